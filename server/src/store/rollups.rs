//! Per-minute rollups: each batch's additions written as deltas in the same transaction as its
//! raw rows, folded into the rollup rows in bulk (a delta the rollups refuse is set aside in
//! `event_rollup_quarantine`), and read by arm or in detail with the pending deltas added.

use super::copy::{BinaryRows, copy_in};
use super::{Result, Store, StoreError, from_timestamp, to_timestamp};
use app::domain::event::Variant;
use app::domain::sketch::Sketch;
use app::domain::stats::Stats;
use app::domain::units::Timestamp;
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap};

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

pub(super) fn minute_of(t: Timestamp) -> Timestamp {
    Timestamp(t.millis().div_euclid(60_000) * 60_000)
}

pub(super) fn variant_from(text: &str) -> Result<Variant> {
    Variant::parse(text).ok_or_else(|| StoreError::Corrupt(format!("variant `{text}`")))
}

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
}

/// Most delta rows one fold transaction takes (a backlog is folded in several). It bounds the
/// fold's memory: each distinct key holds a dense latency sketch (up to a few kB) beside the
/// stored row it is merged into. At 50,000 a time-ordered 100 MB import peaked at 367 MB; at
/// 5,000, 68 MB (docs/benchmarks.md, "Import memory").
const FOLD_LIMIT: i64 = 5_000;
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

/// Rollup rows after a fold: those stored before (to update) and the new ones (to insert).
struct Merged<'a, K> {
    updated: Vec<(K, Stats)>,
    /// The deltas no stored row holds yet, borrowed: a fold holds each sketch once.
    new: Vec<(&'a K, &'a Stats)>,
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

/// Whether a transaction adding to the rollup rows holds the fold lock already, or takes it
/// with its read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FoldLock {
    Held,
    Take,
}

/// Reads the stored detailed and by-arm rollup rows of exactly the keys in `detailed` and
/// `by_arm`, taking the fold lock first if asked. Each key is looked up through the primary key
/// (a lateral join per key): a batch of shuffled backfill touches thousands of minutes, and
/// reading every row of those minutes — as this once did — read hundreds of thousands of rows
/// and their sketches per batch.
async fn stored_rollups(
    tx: &mut sqlx::PgConnection,
    rollout_id: i64,
    detailed: &HashMap<RollupKey, Stats>,
    by_arm: &HashMap<ArmKey, Stats>,
    lock: FoldLock,
) -> Result<(Vec<(RollupKey, Stats)>, Vec<(ArmKey, Stats)>)> {
    if lock == FoldLock::Take {
        sqlx::raw_sql(FOLD_LOCK_SQL).execute(&mut *tx).await?;
    }
    let keys: Vec<&RollupKey> = detailed.keys().collect();
    let statement = format!(
        "SELECT k.minute, k.stage, k.variant, s.*, k.provider, k.file_type, k.size_class_mb
         FROM UNNEST($2::timestamptz[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[])
              AS k (minute, stage, variant, provider, file_type, size_class_mb)
         CROSS JOIN LATERAL (
             SELECT {STATS_COLUMNS} FROM event_rollups r
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
    Ok((stored, stored_by_arm))
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
const FOLD_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(7001, 0);";

/// Adds `detailed` to the rollout's rollup rows, detailed and by arm: reads the stored rows
/// it adds to (under the fold lock), merges, writes them back, and tells open dashboards.
pub(super) async fn add_to_rollups(
    tx: &mut sqlx::PgConnection,
    rollout_id: i64,
    detailed: &HashMap<RollupKey, Stats>,
    lock: FoldLock,
) -> Result<()> {
    let by_arm = by_arm_of(detailed);
    let (stored, stored_by_arm) = stored_rollups(tx, rollout_id, detailed, &by_arm, lock).await?;
    let detailed = merge_stored(detailed, stored);
    let by_arm: Vec<(ArmKey, Stats)> = {
        let merged = merge_stored(&by_arm, stored_by_arm);
        merged.updated.into_iter().chain(merged.new.into_iter().map(|(k, s)| (*k, s.clone()))).collect()
    };
    copy_rollup_rows(tx, "event_rollups", rollout_id, detailed.new.iter().copied()).await?;
    write_rollups(tx, rollout_id, &detailed.updated, &by_arm).await
}

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

/// Inserts detailed rollup rows into `table` (`event_rollups` or `event_rollup_deltas`) with
/// COPY; nothing when `rows` is empty.
pub(super) async fn copy_rollup_rows<'a>(
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
/// before, and every by-arm row (a batch touches a few). Open dashboards are told to refresh
/// (the notification is delivered at commit).
async fn write_rollups(
    tx: &mut sqlx::PgConnection,
    rollout_id: i64,
    detailed: &[(RollupKey, Stats)],
    by_arm: &[(ArmKey, Stats)],
) -> Result<()> {
    let d = StatsColumns::of(detailed.iter().map(|(_, s)| s));
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
        &a.memory_sq_sum_mb2
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
