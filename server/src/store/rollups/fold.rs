//! The fold: pending rollup deltas moved into the rollup rows, at most [`FOLD_LIMIT`] a
//! transaction, a delta the rollups refuse set aside in `event_rollup_quarantine`.

use super::add::{FOLD_LOCK_SQL, FoldLock, add_to_rollups, copy_rollup_rows};
use super::{RollupKey, rollup_of, stats_of, stored_stats, variant_from};
use crate::store::{Result, Store, StoreError, to_timestamp};
use app::domain::stats::Stats;
use futures_util::TryStreamExt;
use std::collections::{BTreeMap, HashMap};

impl Store {
    /// Moves the pending rollup deltas into the rollup rows (see
    /// migrations/0011_rollup_deltas.sql); returns how many delta rows it folded. Safe to run
    /// anywhere at any time: folds queue for one lock, and each deletes the deltas it adds in
    /// the transaction that adds them.
    pub async fn fold_rollups(&self) -> Result<u64> {
        let mut folded = 0;
        loop {
            let n = self.fold_some().await?;
            folded += n;
            if n < FOLD_LIMIT as u64 {
                break;
            }
        }
        if folded > 0 {
            // The deleted deltas' space, for the next batches' deltas (left to autovacuum, the
            // table would grow by megabytes a second under load). Skipped if another process is
            // at it. The fold is committed either way.
            if let Err(error) = sqlx::query("VACUUM (SKIP_LOCKED) event_rollup_deltas").execute(self.pool()).await {
                tracing::warn!(%error, "could not vacuum event_rollup_deltas: its space waits for autovacuum");
            }
        }
        Ok(folded)
    }

    /// Folds up to [`FOLD_LIMIT`] delta rows in one transaction.
    async fn fold_some(&self) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        // One fold at a time. (Two would mostly queue anyway, each waiting on the delta rows
        // the other is deleting; the lock makes it certain.)
        sqlx::raw_sql(FOLD_LOCK_SQL).execute(&mut *tx).await?;
        // Read (and deleted) with a snapshot taken after the lock was granted: every delta
        // committed before is here, and none an earlier fold took.
        // Merged as they stream in: the rows are never all held beside their merge.
        let mut rows = sqlx::query!(
            "DELETE FROM event_rollup_deltas
             WHERE ctid = ANY(ARRAY(SELECT ctid FROM event_rollup_deltas LIMIT $1))
             RETURNING rollout_id, minute, stage, variant, provider, file_type, size_class_mb, success, error, timeout,
                       critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb, memory_sq_sum_mb2",
            FOLD_LIMIT
        )
        .fetch(&mut *tx);
        let mut folded = 0u64;
        let mut by_rollout: BTreeMap<i64, HashMap<RollupKey, Stats>> = BTreeMap::new();
        while let Some(r) = rows.try_next().await? {
            folded += 1;
            let rollout_id = r.rollout_id;
            let (key, stats) = rollup_of!(r);
            by_rollout.entry(rollout_id).or_default().entry(key).or_default().merge(&stats);
        }
        drop(rows);
        for (rollout_id, detailed) in by_rollout {
            fold_or_quarantine(&mut tx, rollout_id, detailed).await?;
        }
        tx.commit().await?;
        Ok(folded)
    }
}

/// Most delta rows one fold transaction takes (a backlog is folded in several). It bounds the
/// fold's memory: each distinct key holds a dense latency sketch (up to a few kB) beside the
/// stored row it is merged into. At 50,000 a time-ordered 100 MB import peaked at 367 MB; at
/// 5,000, 68 MB (docs/benchmarks.md, "Import memory").
const FOLD_LIMIT: i64 = 5_000;

/// Whether Postgres refused the data itself — a data exception (class 22), an integrity
/// violation (23) or a program limit such as an index row's size (54) — rather than failing
/// for a reason that passes (a connection, a timeout, a lock).
fn refused_data(error: &StoreError) -> bool {
    let StoreError::Db(sqlx::Error::Database(db)) = error else { return false };
    db.code().is_some_and(|code| matches!(&code[..2.min(code.len())], "22" | "23" | "54"))
}

/// Adds one rollout's folded deltas to its rollups inside a savepoint. If the database refuses
/// them, each key is tried on its own, and the keys it still refuses are set aside in
/// `event_rollup_quarantine` with the reason: one row that cannot be stored must not stop the
/// fold of every other delta, of every rollout, on every pass.
async fn fold_or_quarantine(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rollout_id: i64,
    detailed: HashMap<RollupKey, Stats>,
) -> Result<()> {
    use sqlx::Acquire;
    let mut savepoint = tx.begin().await?;
    match add_to_rollups(&mut savepoint, rollout_id, &detailed, FoldLock::Held).await {
        Ok(()) => return Ok(savepoint.commit().await?),
        Err(error) if refused_data(&error) => savepoint.rollback().await?,
        // A connection, timeout or lock failure says nothing about the data: the deltas stay
        // pending (and counted by every read), and the next fold tries again.
        Err(other) => return Err(other),
    }
    for (key, stats) in detailed {
        let mut savepoint = tx.begin().await?;
        let one = HashMap::from([(key.clone(), stats.clone())]);
        match add_to_rollups(&mut savepoint, rollout_id, &one, FoldLock::Held).await {
            Ok(()) => savepoint.commit().await?,
            Err(error) if refused_data(&error) => {
                savepoint.rollback().await?;
                let reason = error.to_string();
                tracing::error!(rollout_id, %reason, "a rollup delta cannot be folded; set aside in event_rollup_quarantine");
                copy_rollup_rows(tx, "event_rollup_quarantine", rollout_id, [(&key, &stats)]).await?;
                sqlx::query!("UPDATE event_rollup_quarantine SET reason = $1 WHERE reason IS NULL", reason).execute(&mut **tx).await?;
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}
