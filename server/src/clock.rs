//! Where the server reads the time: the wall clock in production, a fixed or movable one in
//! tests. A leaf every service takes its clock from.

use app::domain::units::Timestamp;
use std::sync::Arc;

/// Where a service reads the time; tests pass a fixed or movable clock.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp(chrono::Utc::now().timestamp_millis()))
}
