//! Background loops: work run every so often, and soon after something wakes it, until the
//! database pool closes (the guard loop, the fold of rollup deltas).

use sqlx::PgPool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Runs `work` every `interval`, or when `wake` is told — but no sooner than `gap` after the
/// last run, so a stream of wakes runs it a few times a second rather than once per wake (wakes
/// meanwhile collapse into one run) — until `pool` closes.
pub fn spawn_loop<F, Fut>(pool: PgPool, interval: Duration, gap: Duration, wake: Arc<Notify>, mut work: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = wake.notified() => tokio::time::sleep_until(last + gap.min(interval)).await,
                () = pool.close_event() => return,
            }
            if pool.is_closed() {
                return;
            }
            last = Instant::now();
            work().await;
        }
    });
}
