//! Per-minute rollups: each batch's additions written as deltas in the same transaction as its
//! raw rows, folded into the rollup rows in bulk (a delta the rollups refuse is set aside in
//! `event_rollup_quarantine`), and read by arm or in detail with the pending deltas added.

use super::{Result, Store, StoreError, from_timestamp, to_timestamp};
use app::domain::event::Variant;
use app::domain::sketch::Sketch;
use app::domain::stats::Stats;
use app::domain::units::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::collections::BTreeMap;

mod add;
mod fold;

pub(super) use add::{FoldLock, add_to_rollups, copy_rollup_rows};

/// The dimensions of a rollup row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub minute: Timestamp,
    pub stage: i32,
    pub variant: Variant,
    pub provider: String,
    pub file_type: String,
    pub size_class_mb: i32,
}

/// The dimensions of a by-arm rollup row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArmKey {
    pub minute: Timestamp,
    pub stage: i32,
    pub variant: Variant,
}

/// The dimensions of a detailed rollup row without its minute: what a window's totals are
/// kept by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub stage: i32,
    pub variant: Variant,
    pub provider: String,
    pub file_type: String,
    pub size_class_mb: i32,
}

/// Which rollup rows a window query reads; `None` means any.
#[derive(Clone, Debug, Default)]
pub struct RollupFilter {
    pub stage: Option<i32>,
    pub provider: Option<String>,
    pub file_type: Option<String>,
    pub size_class_mb: Option<i32>,
}

/// Rebuilds the stats of a rollup row (any query selecting the rollup columns by name).
macro_rules! stats_of {
    ($r:expr) => {
        stored_stats(
            $r.success,
            $r.error,
            $r.timeout,
            $r.critical,
            $r.latency_sum_ms,
            &$r.latency_sketch,
            $r.memory_sum_mb,
            $r.memory_max_mb,
            $r.memory_sq_sum_mb2,
        )
    };
}

/// Rebuilds the key and stats of a detailed rollup row (any query selecting its columns by
/// name); `?` on a corrupt row.
macro_rules! rollup_of {
    ($r:expr) => {{
        let r = $r;
        let key = RollupKey {
            minute: to_timestamp(r.minute),
            stage: r.stage,
            variant: variant_from(&r.variant)?,
            provider: r.provider,
            file_type: r.file_type,
            size_class_mb: r.size_class_mb,
        };
        (key, stats_of!(r)?)
    }};
}

use {rollup_of, stats_of};

#[allow(clippy::too_many_arguments)]
fn stored_stats(
    success: i64,
    error: i64,
    timeout: i64,
    critical: i64,
    latency_sum_ms: f64,
    sketch: &[u8],
    memory_sum_mb: f64,
    memory_max_mb: f64,
    memory_sq_sum_mb2: f64,
) -> Result<Stats> {
    // A row written by a binary older than migration 0016 (during a rolling upgrade) carries no
    // sum of squares: it counts as if every reading of its minute had been the minute's mean,
    // the least the sum can be — as the migration did for the rows it found.
    let count = (success + error + timeout).max(0) as f64;
    let least = if count > 0.0 { memory_sum_mb * memory_sum_mb / count } else { 0.0 };
    Ok(Stats {
        success: success as u64,
        error: error as u64,
        timeout: timeout as u64,
        critical: critical as u64,
        latency_sum_ms,
        latency: Sketch::from_bytes(sketch).map_err(StoreError::Corrupt)?,
        memory_sum_mb,
        memory_max_mb,
        memory_sq_sum_mb2: memory_sq_sum_mb2.max(least),
    })
}

pub(super) fn minute_of(t: Timestamp) -> Timestamp {
    Timestamp(t.millis().div_euclid(60_000) * 60_000)
}

/// The first minute of `t`'s hour.
pub(super) fn hour_of(t: Timestamp) -> Timestamp {
    Timestamp(t.millis().div_euclid(3_600_000) * 3_600_000)
}

pub(super) fn variant_from(text: &str) -> Result<Variant> {
    Variant::parse(text).ok_or_else(|| StoreError::Corrupt(format!("variant `{text}`")))
}

impl Store {
    /// Per-minute stats by arm over `[from, to)` (whole minutes): from the by-arm rollups, or
    /// from the detailed ones when the filter names a provider, file type or size.
    pub async fn window_rows(
        &self,
        rollout_id: i64,
        from: Timestamp,
        to: Timestamp,
        filter: &RollupFilter,
    ) -> Result<Vec<(ArmKey, Stats)>> {
        if filter.provider.is_some() || filter.file_type.is_some() || filter.size_class_mb.is_some() {
            let rows = self.rollups(rollout_id, from, to, filter).await?;
            return Ok(rows.into_iter().map(|(k, s)| (ArmKey { minute: k.minute, stage: k.stage, variant: k.variant }, s)).collect());
        }
        // The stored rows and the pending deltas, in one statement: one snapshot, so a delta is
        // seen either pending or folded, never both. Quarantined deltas count too: only their
        // detailed key was refused, their uploads are as real as any.
        let rows = sqlx::query!(
            r#"SELECT minute AS "minute!", stage AS "stage!", variant AS "variant!", success AS "success!",
                      error AS "error!", timeout AS "timeout!", critical AS "critical!",
                      latency_sum_ms AS "latency_sum_ms!", latency_sketch AS "latency_sketch!",
                      memory_sum_mb AS "memory_sum_mb!", memory_max_mb AS "memory_max_mb!",
                      memory_sq_sum_mb2 AS "memory_sq_sum_mb2!"
               FROM event_rollups_by_arm
               WHERE rollout_id = $1 AND minute >= $2 AND minute < $3 AND ($4::int IS NULL OR stage = $4)
               UNION ALL
               SELECT minute, stage, variant, success, error, timeout, critical, latency_sum_ms, latency_sketch,
                      memory_sum_mb, memory_max_mb, memory_sq_sum_mb2
               FROM event_rollup_deltas
               WHERE rollout_id = $1 AND minute >= $2 AND minute < $3 AND ($4::int IS NULL OR stage = $4)
               UNION ALL
               SELECT minute, stage, variant, success, error, timeout, critical, latency_sum_ms, latency_sketch,
                      memory_sum_mb, memory_max_mb, memory_sq_sum_mb2
               FROM event_rollup_quarantine
               WHERE rollout_id = $1 AND minute >= $2 AND minute < $3 AND ($4::int IS NULL OR stage = $4)"#,
            rollout_id,
            from_timestamp(minute_of(from)),
            from_timestamp(to),
            filter.stage
        )
        .fetch_all(self.pool())
        .await?;
        merged_by_key(rows.into_iter().map(|r| {
            let key = ArmKey { minute: to_timestamp(r.minute), stage: r.stage, variant: variant_from(&r.variant)? };
            let stats = stats_of!(r)?;
            Ok((key, stats))
        }))
    }

    /// Detailed rollup rows of a window `[from, to)`, in whole minutes, with the pending deltas
    /// added (one statement, like [`Store::window_rows`]; `event_rollup_deltas` is `LIKE
    /// event_rollups`, so `SELECT *` of both lines up).
    pub async fn rollups(&self, rollout_id: i64, from: Timestamp, to: Timestamp, filter: &RollupFilter) -> Result<Vec<(RollupKey, Stats)>> {
        let rows = sqlx::query!(
            r#"SELECT minute AS "minute!", stage AS "stage!", variant AS "variant!", provider AS "provider!",
                      file_type AS "file_type!", size_class_mb AS "size_class_mb!", success AS "success!",
                      error AS "error!", timeout AS "timeout!", critical AS "critical!",
                      latency_sum_ms AS "latency_sum_ms!", latency_sketch AS "latency_sketch!",
                      memory_sum_mb AS "memory_sum_mb!", memory_max_mb AS "memory_max_mb!",
                      memory_sq_sum_mb2 AS "memory_sq_sum_mb2!"
               FROM (SELECT * FROM event_rollups UNION ALL SELECT * FROM event_rollup_deltas) AS rollups
               WHERE rollout_id = $1 AND minute >= $2 AND minute < $3
                 AND ($4::int IS NULL OR stage = $4) AND ($5::text IS NULL OR provider = $5)
                 AND ($6::text IS NULL OR file_type = $6) AND ($7::int IS NULL OR size_class_mb = $7)"#,
            rollout_id,
            from_timestamp(minute_of(from)),
            from_timestamp(to),
            filter.stage,
            filter.provider,
            filter.file_type,
            filter.size_class_mb
        )
        .fetch_all(self.pool())
        .await?;
        merged_by_key(rows.into_iter().map(|r| Ok(rollup_of!(r))))
    }

    /// The detailed rollups of a window `[from, to)` (whole minutes), with the pending deltas,
    /// summed by everything but the minute: what a stage is judged on by cell. The window's
    /// whole hours are read from the hourly rows (migrations/0022_hourly_rollups.sql) and only
    /// its ragged ends from the minute rows — one statement, one snapshot, so that every row
    /// counts once whichever table holds it. Hours before the rollout's hourly rows are complete
    /// (`rollouts.hourly_rollups_from`), and a rollout not stored, are read by the minute.
    pub async fn rollup_totals(
        &self,
        rollout_id: i64,
        from: Timestamp,
        to: Timestamp,
        filter: &RollupFilter,
    ) -> Result<Vec<(CellKey, Stats)>> {
        // `hours` is the window's whole hours [h0, h1) that the hourly rows hold, or the empty
        // [to, to); the minute rows cover [from, h0) and [h1, to).
        let rows = sqlx::query!(
            r#"WITH bounds AS (
                   SELECT GREATEST(date_trunc('hour', $2::timestamptz + interval '59 minutes'),
                                   COALESCE(r.hourly_rollups_from, 'infinity')) AS h0,
                          date_trunc('hour', $3::timestamptz) AS h1
                   FROM (SELECT 1) AS one LEFT JOIN rollouts r ON r.id = $1
               ), hours AS (
                   SELECT CASE WHEN h0 < h1 THEN h0 ELSE $3 END AS h0, CASE WHEN h0 < h1 THEN h1 ELSE $3 END AS h1
                   FROM bounds
               ), rows AS (
                   SELECT r.* FROM event_rollups_hourly r, hours
                   WHERE r.rollout_id = $1 AND r.minute >= hours.h0 AND r.minute < hours.h1
                   UNION ALL
                   SELECT r.* FROM event_rollups r, hours
                   WHERE r.rollout_id = $1 AND r.minute >= $2 AND r.minute < hours.h0
                   UNION ALL
                   SELECT r.* FROM event_rollups r, hours
                   WHERE r.rollout_id = $1 AND r.minute >= hours.h1 AND r.minute < $3
                   UNION ALL
                   SELECT * FROM event_rollup_deltas r
                   WHERE r.rollout_id = $1 AND r.minute >= $2 AND r.minute < $3
               )
               SELECT stage AS "stage!", variant AS "variant!", provider AS "provider!", file_type AS "file_type!",
                      size_class_mb AS "size_class_mb!", success AS "success!", error AS "error!", timeout AS "timeout!",
                      critical AS "critical!", latency_sum_ms AS "latency_sum_ms!", latency_sketch AS "latency_sketch!",
                      memory_sum_mb AS "memory_sum_mb!", memory_max_mb AS "memory_max_mb!",
                      memory_sq_sum_mb2 AS "memory_sq_sum_mb2!"
               FROM rows
               WHERE ($4::int IS NULL OR stage = $4) AND ($5::text IS NULL OR provider = $5)
                 AND ($6::text IS NULL OR file_type = $6) AND ($7::int IS NULL OR size_class_mb = $7)"#,
            rollout_id,
            from_timestamp(minute_of(from)),
            from_timestamp(to),
            filter.stage,
            filter.provider,
            filter.file_type,
            filter.size_class_mb
        )
        .fetch_all(self.pool())
        .await?;
        merged_by_key(rows.into_iter().map(|r| {
            let key = CellKey {
                stage: r.stage,
                variant: variant_from(&r.variant)?,
                provider: r.provider,
                file_type: r.file_type,
                size_class_mb: r.size_class_mb,
            };
            Ok((key, stats_of!(r)?))
        }))
    }
}

/// A batch of at least [`SPARSE_MIN_EVENTS`] new events with a detailed rollup key per this
/// many events or fewer is sparse (a backfill): it adds to the rollup rows directly instead of
/// writing deltas. Smaller batches always write deltas: the fold finds their keys again in the
/// batches around them.
pub(super) const SPARSE_EVENTS_PER_KEY: usize = 2;
pub(super) const SPARSE_MIN_EVENTS: usize = 100;

/// Rows with equal keys merged (a stored rollup row and the pending deltas of its key), in key
/// order (minute first).
fn merged_by_key<K: Ord>(rows: impl Iterator<Item = Result<(K, Stats)>>) -> Result<Vec<(K, Stats)>> {
    let mut merged: BTreeMap<K, Stats> = BTreeMap::new();
    for row in rows {
        let (key, stats) = row?;
        merged.entry(key).or_default().merge(&stats);
    }
    Ok(merged.into_iter().collect())
}

/// The rollup columns after the key columns, in table order (read by [`stats_at`]).
const STATS_COLUMNS: &str =
    "success, error, timeout, critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb, memory_sq_sum_mb2";
/// How many columns [`STATS_COLUMNS`] names.
const STATS_COLUMN_COUNT: usize = 9;

/// The stats of a rollup row read by a simple query, from column `first` on ([`STATS_COLUMNS`]).
fn stats_at(row: &PgRow, first: usize) -> Result<Stats> {
    let sketch: Vec<u8> = row.try_get(first + 5)?;
    stored_stats(
        row.try_get(first)?,
        row.try_get(first + 1)?,
        row.try_get(first + 2)?,
        row.try_get(first + 3)?,
        row.try_get(first + 4)?,
        &sketch,
        row.try_get(first + 6)?,
        row.try_get(first + 7)?,
        row.try_get(first + 8)?,
    )
}

#[cfg(test)]
mod tests;
