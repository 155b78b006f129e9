//! Adding to the rollup rows, detailed and by arm: the stored rows of the keys read (under the
//! fold lock), merged, and written back in one statement; new rows inserted by `COPY`.

use super::{ArmKey, RollupKey, STATS_COLUMN_COUNT, STATS_COLUMNS, hour_of, stats_at, variant_from};
use crate::store::copy::{BinaryRows, copy_in};
use crate::store::{Result, from_timestamp, to_timestamp};
use app::domain::stats::Stats;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// Rollup stats as column arrays, for UNNEST-based upserts.
struct StatsColumns {
    success: Vec<i64>,
    error: Vec<i64>,
    timeout: Vec<i64>,
    critical: Vec<i64>,
    latency_sum_ms: Vec<f64>,
    latency_sketch: Vec<Vec<u8>>,
    memory_sum_mb: Vec<f64>,
    memory_max_mb: Vec<f64>,
    memory_sq_sum_mb2: Vec<f64>,
}

impl StatsColumns {
    fn of<'a>(stats: impl Iterator<Item = &'a Stats>) -> StatsColumns {
        let mut c = StatsColumns {
            success: Vec::new(),
            error: Vec::new(),
            timeout: Vec::new(),
            critical: Vec::new(),
            latency_sum_ms: Vec::new(),
            latency_sketch: Vec::new(),
            memory_sum_mb: Vec::new(),
            memory_max_mb: Vec::new(),
            memory_sq_sum_mb2: Vec::new(),
        };
        for s in stats {
            c.success.push(s.success as i64);
            c.error.push(s.error as i64);
            c.timeout.push(s.timeout as i64);
            c.critical.push(s.critical as i64);
            c.latency_sum_ms.push(s.latency_sum_ms);
            c.latency_sketch.push(s.latency.to_bytes());
            c.memory_sum_mb.push(s.memory_sum_mb);
            c.memory_max_mb.push(s.memory_max_mb);
            c.memory_sq_sum_mb2.push(s.memory_sq_sum_mb2);
        }
        c
    }
}

/// Rollup rows after a fold: those stored before (to update) and the new ones (to insert).
struct Merged<'a, K> {
    updated: Vec<(K, Stats)>,
    /// The deltas no stored row holds yet, borrowed: a fold holds each sketch once.
    new: Vec<(&'a K, &'a Stats)>,
}

impl<K: Clone> Merged<'_, K> {
    /// Every row, updated and new.
    fn into_all(self) -> Vec<(K, Stats)> {
        self.updated.into_iter().chain(self.new.into_iter().map(|(k, s)| (k.clone(), s.clone()))).collect()
    }
}

/// `deltas` added to the `stored` rows they belong to.
fn merge_stored<K: Eq + std::hash::Hash>(deltas: &HashMap<K, Stats>, stored: Vec<(K, Stats)>) -> Merged<'_, K> {
    let mut updated = Vec::with_capacity(stored.len());
    for (key, mut stats) in stored {
        if let Some(delta) = deltas.get(&key) {
            stats.merge(delta);
            updated.push((key, stats));
        }
    }
    let seen: std::collections::HashSet<&K> = updated.iter().map(|(k, _)| k).collect();
    let new = deltas.iter().filter(|(k, _)| !seen.contains(k)).collect();
    Merged { updated, new }
}

/// Writes a rollup row's stats columns, in table order.
fn stats_fields(rows: &mut BinaryRows, s: &Stats) {
    rows.int8(s.success as i64)
        .int8(s.error as i64)
        .int8(s.timeout as i64)
        .int8(s.critical as i64)
        .float8(s.latency_sum_ms)
        .bytes(&s.latency.to_bytes())
        .float8(s.memory_sum_mb)
        .float8(s.memory_max_mb)
        .float8(s.memory_sq_sum_mb2);
}

/// Whether a transaction adding to the rollup rows holds the fold lock already, or takes it
/// with its read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum FoldLock {
    Held,
    Take,
}

/// The stored rows a batch of additions adds to.
struct Stored {
    detailed: Vec<(RollupKey, Stats)>,
    hourly: Vec<(RollupKey, Stats)>,
    by_arm: Vec<(ArmKey, Stats)>,
}

/// Reads the stored detailed, hourly and by-arm rollup rows of exactly the keys given, taking
/// the fold lock first if asked.
async fn stored_rollups(
    tx: &mut sqlx::PgConnection,
    rollout_id: i64,
    detailed: &HashMap<RollupKey, Stats>,
    hourly: &HashMap<RollupKey, Stats>,
    by_arm: &HashMap<ArmKey, Stats>,
    lock: FoldLock,
) -> Result<Stored> {
    if lock == FoldLock::Take {
        sqlx::raw_sql(FOLD_LOCK_SQL).execute(&mut *tx).await?;
    }
    let detailed = stored_detailed(tx, "event_rollups", rollout_id, detailed).await?;
    let hourly = stored_detailed(tx, "event_rollups_hourly", rollout_id, hourly).await?;

    let arms: Vec<&ArmKey> = by_arm.keys().collect();
    let statement = format!(
        "SELECT k.minute, k.stage, k.variant, s.*
         FROM UNNEST($2::timestamptz[], $3::int[], $4::text[]) AS k (minute, stage, variant)
         CROSS JOIN LATERAL (
             SELECT {STATS_COLUMNS} FROM event_rollups_by_arm r
             WHERE r.rollout_id = $1 AND r.minute = k.minute AND r.stage = k.stage AND r.variant = k.variant
         ) AS s"
    );
    let rows = sqlx::query(AssertSqlSafe(statement))
        .bind(rollout_id)
        .bind(arms.iter().map(|k| from_timestamp(k.minute)).collect::<Vec<_>>())
        .bind(arms.iter().map(|k| k.stage).collect::<Vec<_>>())
        .bind(arms.iter().map(|k| k.variant.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    let mut stored_by_arm = Vec::with_capacity(rows.len());
    for row in &rows {
        let variant: String = row.try_get(2)?;
        let key = ArmKey { minute: to_timestamp(row.try_get(0)?), stage: row.try_get(1)?, variant: variant_from(&variant)? };
        stored_by_arm.push((key, stats_at(row, 3)?));
    }
    Ok(Stored { detailed, hourly, by_arm: stored_by_arm })
}

/// The stored rows of `table` (`event_rollups` or `event_rollups_hourly`) of exactly the keys
/// of `keys`. Each key is looked up through the primary key (a lateral join per key): a batch
/// of shuffled backfill touches thousands of minutes, and reading every row of those minutes —
/// as this once did — read hundreds of thousands of rows and their sketches per batch.
async fn stored_detailed(
    tx: &mut sqlx::PgConnection,
    table: &str,
    rollout_id: i64,
    keys: &HashMap<RollupKey, Stats>,
) -> Result<Vec<(RollupKey, Stats)>> {
    let keys: Vec<&RollupKey> = keys.keys().collect();
    let statement = format!(
        "SELECT k.minute, k.stage, k.variant, s.*, k.provider, k.file_type, k.size_class_mb
         FROM UNNEST($2::timestamptz[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[])
              AS k (minute, stage, variant, provider, file_type, size_class_mb)
         CROSS JOIN LATERAL (
             SELECT {STATS_COLUMNS} FROM {table} r
             WHERE r.rollout_id = $1 AND r.minute = k.minute AND r.stage = k.stage AND r.variant = k.variant
               AND r.provider = k.provider AND r.file_type = k.file_type AND r.size_class_mb = k.size_class_mb
         ) AS s"
    );
    let rows = sqlx::query(AssertSqlSafe(statement))
        .bind(rollout_id)
        .bind(keys.iter().map(|k| from_timestamp(k.minute)).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.stage).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.variant.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.provider.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.file_type.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.size_class_mb).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    let width = 3 + STATS_COLUMN_COUNT;
    let mut stored = Vec::with_capacity(rows.len());
    for row in &rows {
        let variant: String = row.try_get(2)?;
        let key = RollupKey {
            minute: to_timestamp(row.try_get(0)?),
            stage: row.try_get(1)?,
            variant: variant_from(&variant)?,
            provider: row.try_get(width)?,
            file_type: row.try_get(width + 1)?,
            size_class_mb: row.try_get(width + 2)?,
        };
        stored.push((key, stats_at(row, 3)?));
    }
    Ok(stored)
}

/// The hourly rows' share of detailed additions: each key's minute cut to its hour.
fn hourly_of(detailed: &HashMap<RollupKey, Stats>) -> HashMap<RollupKey, Stats> {
    let mut hourly: HashMap<RollupKey, Stats> = HashMap::new();
    for (key, stats) in detailed {
        hourly.entry(RollupKey { minute: hour_of(key.minute), ..key.clone() }).or_default().merge(stats);
    }
    hourly
}

/// The by-arm rows' share of detailed additions.
fn by_arm_of(detailed: &HashMap<RollupKey, Stats>) -> HashMap<ArmKey, Stats> {
    let mut by_arm: HashMap<ArmKey, Stats> = HashMap::new();
    for (key, stats) in detailed {
        by_arm.entry(ArmKey { minute: key.minute, stage: key.stage, variant: key.variant }).or_default().merge(stats);
    }
    by_arm
}

/// The lock that lets one transaction at a time add to the rollup rows (they are read, merged
/// and written back); held until the transaction ends.
pub(super) const FOLD_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(7001, 0);";

/// Adds `detailed` to the rollout's rollup rows, detailed and by arm: reads the stored rows
/// it adds to (under the fold lock), merges, writes them back, and tells open dashboards.
pub(in crate::store) async fn add_to_rollups(
    tx: &mut sqlx::PgConnection,
    rollout_id: i64,
    detailed: &HashMap<RollupKey, Stats>,
    lock: FoldLock,
) -> Result<()> {
    let by_arm = by_arm_of(detailed);
    let hourly = hourly_of(detailed);
    let stored = stored_rollups(tx, rollout_id, detailed, &hourly, &by_arm, lock).await?;
    let detailed = merge_stored(detailed, stored.detailed);
    // A batch touches few by-arm and hourly rows: all of them are upserted.
    let by_arm = merge_stored(&by_arm, stored.by_arm).into_all();
    let hourly = merge_stored(&hourly, stored.hourly).into_all();
    copy_rollup_rows(tx, "event_rollups", rollout_id, detailed.new.iter().copied()).await?;
    write_rollups(tx, rollout_id, &detailed.updated, &hourly, &by_arm).await
}

/// Inserts detailed rollup rows into `table` (`event_rollups` or `event_rollup_deltas`) with
/// COPY; nothing when `rows` is empty.
pub(in crate::store) async fn copy_rollup_rows<'a>(
    tx: &mut sqlx::PgConnection,
    table: &str,
    rollout_id: i64,
    rows: impl IntoIterator<Item = (&'a RollupKey, &'a Stats)>,
) -> Result<()> {
    let mut payload = BinaryRows::new(16);
    let mut any = false;
    for (k, s) in rows {
        any = true;
        payload
            .row()
            .int8(rollout_id)
            .timestamp(k.minute)
            .int4(k.stage)
            .text(k.variant.as_str())
            .text(&k.provider)
            .text(&k.file_type)
            .int4(k.size_class_mb);
        stats_fields(&mut payload, s);
    }
    if !any {
        return Ok(());
    }
    let statement = format!(
        "COPY {table} (rollout_id, minute, stage, variant, provider, file_type, size_class_mb, success, error,
                       timeout, critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb, memory_sq_sum_mb2)
         FROM STDIN WITH (FORMAT binary)"
    );
    copy_in(tx, &statement, payload).await?;
    Ok(())
}

/// Writes the merged rows back in one statement, one round trip: the detailed rows stored
/// before, and every hourly and by-arm row (a batch touches a few). Open dashboards are told to
/// refresh (the notification is delivered at commit).
async fn write_rollups(
    tx: &mut sqlx::PgConnection,
    rollout_id: i64,
    detailed: &[(RollupKey, Stats)],
    hourly: &[(RollupKey, Stats)],
    by_arm: &[(ArmKey, Stats)],
) -> Result<()> {
    let d = StatsColumns::of(detailed.iter().map(|(_, s)| s));
    let h = StatsColumns::of(hourly.iter().map(|(_, s)| s));
    let a = StatsColumns::of(by_arm.iter().map(|(_, s)| s));
    // Upserts find each row through the primary key, whatever the planner thinks of the key
    // list (a join could scan every rollup row of the rollout).
    sqlx::query!(
        "WITH detailed AS (
             INSERT INTO event_rollups (rollout_id, minute, stage, variant, provider, file_type, size_class_mb, success,
                                        error, timeout, critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb,
                                        memory_sq_sum_mb2)
             SELECT $1, * FROM UNNEST($2::timestamptz[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[],
                                      $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::float8[], $13::bytea[],
                                      $14::float8[], $15::float8[], $16::float8[])
             ON CONFLICT (rollout_id, minute, stage, variant, provider, file_type, size_class_mb) DO UPDATE SET
                 success = EXCLUDED.success, error = EXCLUDED.error, timeout = EXCLUDED.timeout,
                 critical = EXCLUDED.critical, latency_sum_ms = EXCLUDED.latency_sum_ms,
                 latency_sketch = EXCLUDED.latency_sketch, memory_sum_mb = EXCLUDED.memory_sum_mb,
                 memory_max_mb = EXCLUDED.memory_max_mb, memory_sq_sum_mb2 = EXCLUDED.memory_sq_sum_mb2
         ), hourly AS (
             INSERT INTO event_rollups_hourly (rollout_id, minute, stage, variant, provider, file_type, size_class_mb, success,
                                               error, timeout, critical, latency_sum_ms, latency_sketch, memory_sum_mb,
                                               memory_max_mb, memory_sq_sum_mb2)
             SELECT $1, * FROM UNNEST($29::timestamptz[], $30::int[], $31::text[], $32::text[], $33::text[], $34::int[],
                                      $35::int8[], $36::int8[], $37::int8[], $38::int8[], $39::float8[], $40::bytea[],
                                      $41::float8[], $42::float8[], $43::float8[])
             ON CONFLICT (rollout_id, minute, stage, variant, provider, file_type, size_class_mb) DO UPDATE SET
                 success = EXCLUDED.success, error = EXCLUDED.error, timeout = EXCLUDED.timeout,
                 critical = EXCLUDED.critical, latency_sum_ms = EXCLUDED.latency_sum_ms,
                 latency_sketch = EXCLUDED.latency_sketch, memory_sum_mb = EXCLUDED.memory_sum_mb,
                 memory_max_mb = EXCLUDED.memory_max_mb, memory_sq_sum_mb2 = EXCLUDED.memory_sq_sum_mb2
         ), by_arm AS (
             INSERT INTO event_rollups_by_arm (rollout_id, minute, stage, variant, success, error, timeout, critical,
                                               latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb, memory_sq_sum_mb2)
             SELECT $1, * FROM UNNEST($17::timestamptz[], $18::int[], $19::text[], $20::int8[], $21::int8[], $22::int8[],
                                      $23::int8[], $24::float8[], $25::bytea[], $26::float8[], $27::float8[], $28::float8[])
             ON CONFLICT (rollout_id, minute, stage, variant) DO UPDATE SET
                 success = EXCLUDED.success, error = EXCLUDED.error, timeout = EXCLUDED.timeout,
                 critical = EXCLUDED.critical, latency_sum_ms = EXCLUDED.latency_sum_ms,
                 latency_sketch = EXCLUDED.latency_sketch, memory_sum_mb = EXCLUDED.memory_sum_mb,
                 memory_max_mb = EXCLUDED.memory_max_mb, memory_sq_sum_mb2 = EXCLUDED.memory_sq_sum_mb2
         )
         SELECT pg_notify('rampart_rollouts', $1::bigint::text)",
        rollout_id,
        &detailed.iter().map(|(k, _)| from_timestamp(k.minute)).collect::<Vec<_>>(),
        &detailed.iter().map(|(k, _)| k.stage).collect::<Vec<_>>(),
        &detailed.iter().map(|(k, _)| k.variant.as_str().to_string()).collect::<Vec<_>>(),
        &detailed.iter().map(|(k, _)| k.provider.clone()).collect::<Vec<_>>(),
        &detailed.iter().map(|(k, _)| k.file_type.clone()).collect::<Vec<_>>(),
        &detailed.iter().map(|(k, _)| k.size_class_mb).collect::<Vec<_>>(),
        &d.success,
        &d.error,
        &d.timeout,
        &d.critical,
        &d.latency_sum_ms,
        &d.latency_sketch,
        &d.memory_sum_mb,
        &d.memory_max_mb,
        &d.memory_sq_sum_mb2,
        &by_arm.iter().map(|(k, _)| from_timestamp(k.minute)).collect::<Vec<_>>(),
        &by_arm.iter().map(|(k, _)| k.stage).collect::<Vec<_>>(),
        &by_arm.iter().map(|(k, _)| k.variant.as_str().to_string()).collect::<Vec<_>>(),
        &a.success,
        &a.error,
        &a.timeout,
        &a.critical,
        &a.latency_sum_ms,
        &a.latency_sketch,
        &a.memory_sum_mb,
        &a.memory_max_mb,
        &a.memory_sq_sum_mb2,
        &hourly.iter().map(|(k, _)| from_timestamp(k.minute)).collect::<Vec<_>>(),
        &hourly.iter().map(|(k, _)| k.stage).collect::<Vec<_>>(),
        &hourly.iter().map(|(k, _)| k.variant.as_str().to_string()).collect::<Vec<_>>(),
        &hourly.iter().map(|(k, _)| k.provider.clone()).collect::<Vec<_>>(),
        &hourly.iter().map(|(k, _)| k.file_type.clone()).collect::<Vec<_>>(),
        &hourly.iter().map(|(k, _)| k.size_class_mb).collect::<Vec<_>>(),
        &h.success,
        &h.error,
        &h.timeout,
        &h.critical,
        &h.latency_sum_ms,
        &h.latency_sketch,
        &h.memory_sum_mb,
        &h.memory_max_mb,
        &h.memory_sq_sum_mb2
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
