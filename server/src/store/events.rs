//! Event storage: raw events in daily partitions, the ids already seen, per-minute rollups (each
//! batch's additions written as deltas in the same transaction as its raw rows, folded into the
//! rollup rows in bulk), and frozen baselines.

use super::copy::{BinaryRows, copy_in};
use super::{Result, Store, from_timestamp, to_timestamp};
use crate::store::StoreError;
use app::domain::event::{Outcome, UploadEvent, Variant};
use app::domain::sketch::Sketch;
use app::domain::stats::{Stats, Summary};
use app::domain::units::Timestamp;
use chrono::NaiveDate;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// An event ready to store: parsed, with the stage it happened in and its size class.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event: UploadEvent,
    pub stage: i32,
    pub size_class_mb: i32,
}

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

/// How many of a batch were new and how many had been seen before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub accepted: u64,
    pub duplicates: u64,
}

/// One interval of a rollout's stage history.
#[derive(Clone, Debug)]
pub struct StageSpan {
    pub stage: i32,
    pub from: Timestamp,
    pub to: Option<Timestamp>,
}

/// A frozen baseline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Baseline {
    pub id: i64,
    pub captured_at: Timestamp,
    pub captured_by: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub summary: Summary,
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
) -> Result<Stats> {
    Ok(Stats {
        success: success as u64,
        error: error as u64,
        timeout: timeout as u64,
        critical: critical as u64,
        latency_sum_ms,
        latency: Sketch::from_bytes(sketch).map_err(StoreError::Corrupt)?,
        memory_sum_mb,
        memory_max_mb,
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
        }
        c
    }
}

fn minute_of(t: Timestamp) -> Timestamp {
    Timestamp(t.millis().div_euclid(60_000) * 60_000)
}

/// The UTC day of `t`: the day whose partition holds it.
fn utc_day(t: Timestamp) -> NaiveDate {
    from_timestamp(t).date_naive()
}

/// The name of a day's partition (built from a date, never from input text).
fn partition_name(day: NaiveDate) -> String {
    format!("events_{}", day.format("%Y%m%d"))
}

/// The SQLSTATE of a unique index refusing a row.
const UNIQUE_VIOLATION: &str = "23505";
/// The SQLSTATE of a statement naming a table that does not exist.
const UNDEFINED_TABLE: &str = "42P01";
/// The SQLSTATE of a row outside a table's constraints (here: a partition's bounds).
const CHECK_VIOLATION: &str = "23514";

/// The raw events' table, which routes each row to its day's partition.
const PARENT_TABLE: &str = "events";

/// Rows a streamed `COPY` sends at a time: Postgres stores each piece while the next is read.
const COPY_PIECE: usize = 128;

/// What a batch's `COPY` wrote: its rows, and their additions to the detailed rollups.
#[derive(Default)]
struct Copied {
    rows: u64,
    detailed: HashMap<RollupKey, Stats>,
}

/// The single UTC day the events fall in, if they fall in one.
fn single_day(events: &[NewEvent]) -> Option<NaiveDate> {
    let day = utc_day(events.first()?.event.at);
    events.iter().all(|e| utc_day(e.event.at) == day).then_some(day)
}

/// Writes the events of `batch`, then those of `rest` as they come (appended to `batch`), into
/// `table` (`events` or one of its partitions) with one COPY, sent in pieces of [`COPY_PIECE`]
/// rows: Postgres stores each piece while the next is read (and, from the HTTP ingest, parsed).
/// Of several events with one id on one (UTC) day only the first is written: to the store they
/// are one event (its partition's unique index is per day). Fails with a unique violation if
/// one was stored before, or a check violation if one is outside the partition's day; `rest` is
/// then left part read.
async fn copy_events(
    tx: &mut sqlx::PgConnection,
    table: &str,
    rollout_id: i64,
    batch: &mut Vec<NewEvent>,
    rest: &mut impl Iterator<Item = NewEvent>,
) -> sqlx::Result<Copied> {
    let statement = format!(
        "COPY {table} (rollout_id, at, event_id, stage, variant, outcome, latency_ms, memory_mb, provider, file_type,
                      size_bytes, error_kind, critical) FROM STDIN WITH (FORMAT binary)"
    );
    let mut copy = tx.copy_in_raw(&statement).await?;
    let mut rows = BinaryRows::new(13);
    let mut seen = HashSet::with_capacity(batch.len());
    let mut copied = Copied::default();
    let mut sent = 0;
    loop {
        for new in &batch[sent..] {
            let e = &new.event;
            if !seen.insert((e.event_id.clone(), utc_day(e.at))) {
                continue;
            }
            rows.row()
                .int8(rollout_id)
                .timestamp(e.at)
                .text(&e.event_id)
                .int4(new.stage)
                .text(e.variant.as_str())
                .text(e.outcome.as_str())
                .float8(e.latency_ms)
                .float8(e.memory_mb)
                .text(&e.provider)
                .text(&e.file_type)
                .int8(e.size_bytes.min(i64::MAX as u64) as i64)
                .optional_text(e.error_kind.as_deref())
                .bool(e.critical);
            copied.rows += 1;
            copied.detailed.entry(rollup_key(new)).or_default().add(e);
        }
        sent = batch.len();
        copy.send(rows.take()).await?;
        batch.extend(rest.by_ref().take(COPY_PIECE));
        if batch.len() == sent {
            break;
        }
    }
    copy.send(rows.finish()).await?;
    copy.finish().await?;
    Ok(copied)
}

/// Inserts the events of `batch` that are not stored yet; returns them.
async fn insert_unseen<'b>(tx: &mut sqlx::PgConnection, rollout_id: i64, batch: &'b [NewEvent]) -> Result<Vec<&'b NewEvent>> {
    let col = |f: &dyn Fn(&NewEvent) -> String| batch.iter().map(f).collect::<Vec<String>>();
    let stored = sqlx::query!(
        "INSERT INTO events (rollout_id, at, event_id, stage, variant, outcome, latency_ms, memory_mb,
                             provider, file_type, size_bytes, error_kind, critical)
         SELECT $1, * FROM UNNEST($2::timestamptz[], $3::text[], $4::int[], $5::text[], $6::text[],
                                  $7::float8[], $8::float8[], $9::text[], $10::text[], $11::int8[],
                                  $12::text[], $13::bool[])
         ON CONFLICT DO NOTHING
         RETURNING event_id, at",
        rollout_id,
        &batch.iter().map(|e| from_timestamp(e.event.at)).collect::<Vec<_>>(),
        &col(&|e| e.event.event_id.clone()),
        &batch.iter().map(|e| e.stage).collect::<Vec<_>>(),
        &col(&|e| e.event.variant.as_str().to_string()),
        &col(&|e| e.event.outcome.as_str().to_string()),
        &batch.iter().map(|e| e.event.latency_ms).collect::<Vec<_>>(),
        &batch.iter().map(|e| e.event.memory_mb).collect::<Vec<_>>(),
        &col(&|e| e.event.provider.clone()),
        &col(&|e| e.event.file_type.clone()),
        &batch.iter().map(|e| e.event.size_bytes.min(i64::MAX as u64) as i64).collect::<Vec<_>>(),
        // Nullable elements: Postgres arrays hold NULLs, the macro cannot express it.
        &batch.iter().map(|e| e.event.error_kind.clone()).collect::<Vec<Option<String>>>() as _,
        &batch.iter().map(|e| e.event.critical).collect::<Vec<_>>()
    )
    .fetch_all(&mut *tx)
    .await?;
    // The rows are inserted in the batch's order, so of several lines with one id the first
    // was stored; match what was stored back to its lines by id and timestamp.
    let mut fresh: HashMap<(&str, i64), usize> = HashMap::new();
    for row in &stored {
        *fresh.entry((row.event_id.as_str(), to_timestamp(row.at).millis())).or_default() += 1;
    }
    Ok(batch
        .iter()
        .filter(|e| match fresh.get_mut(&(e.event.event_id.as_str(), e.event.at.millis())) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .collect())
}

fn variant_from(text: &str) -> Result<Variant> {
    Variant::parse(text).ok_or_else(|| StoreError::Corrupt(format!("variant `{text}`")))
}

impl Store {
    /// The rollout's stage intervals, oldest first.
    pub async fn stage_spans(&self, rollout_id: i64) -> Result<Vec<StageSpan>> {
        let rows =
            sqlx::query!("SELECT stage, entered_at, left_at FROM stage_history WHERE rollout_id = $1 ORDER BY entered_at, id", rollout_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| StageSpan { stage: r.stage, from: to_timestamp(r.entered_at), to: r.left_at.map(to_timestamp) })
            .collect())
    }

    /// Creates the daily partitions the given times fall in, each with the unique index on
    /// (rollout, event id) that finds duplicates; both in one transaction, so no ingest ever
    /// sees a partition without its index. Partition names and bounds are built from dates,
    /// never from input text.
    pub async fn ensure_partitions(&self, times: impl IntoIterator<Item = Timestamp>) -> Result<()> {
        let days: BTreeSet<NaiveDate> = times.into_iter().map(utc_day).collect();
        for day in days {
            let next = day.succ_opt().unwrap_or(day);
            let name = partition_name(day);
            let exists = sqlx::query_scalar!("SELECT to_regclass($1) IS NOT NULL", name).fetch_one(self.pool()).await?;
            if exists == Some(true) {
                continue;
            }
            let mut tx = self.pool().begin().await?;
            let ddl = [
                format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ('{day}') TO ('{next}')"),
                format!("CREATE UNIQUE INDEX IF NOT EXISTS {name}_ids ON {name} (rollout_id, event_id)"),
            ];
            let created: std::result::Result<(), sqlx::Error> = async {
                for statement in ddl {
                    sqlx::query(AssertSqlSafe(statement).into_sql_str()).execute(&mut *tx).await?;
                }
                Ok(())
            }
            .await;
            match created {
                Ok(()) => tx.commit().await?,
                // Another ingest created it at the same moment (and committed its index with it).
                Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P07" | "23505")) => tx.rollback().await?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Stores a batch in one transaction: new events only (a replay is a duplicate, never a
    /// second count: the partition's unique index on the event id finds it), raw rows and their
    /// rollup deltas together (a sparse batch: its rollups). Returns after commit, so an
    /// acknowledged event is durable and counted by every read from then on.
    pub async fn ingest(&self, rollout_id: i64, batch: Vec<NewEvent>) -> Result<Ingested> {
        let tx = self.pool().begin().await?;
        self.store_batch(tx, rollout_id, batch, std::iter::empty()).await
    }

    /// Stores a batch as [`Store::ingest`] does, reading its events as they are written: when
    /// the iterator parses them, Postgres stores the first rows while the rest are parsed.
    pub async fn ingest_streaming(&self, rollout_id: i64, events: impl Iterator<Item = NewEvent> + Send) -> Result<Ingested> {
        let mut rest = events;
        // BEGIN travels while the first piece is read.
        let (tx, first) = tokio::join!(self.pool().begin(), async { rest.by_ref().take(COPY_PIECE).collect::<Vec<_>>() });
        self.store_batch(tx?, rollout_id, first, rest).await
    }

    /// Stores `batch` and then `rest` in `tx` (see [`Store::ingest`]); the table is chosen by
    /// the days of `batch`.
    async fn store_batch(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        rollout_id: i64,
        mut batch: Vec<NewEvent>,
        mut rest: impl Iterator<Item = NewEvent> + Send,
    ) -> Result<Ingested> {
        if batch.is_empty() {
            return Ok(Ingested::default());
        }
        // Nearly every batch is all new events of one day: they go with COPY, the cheapest write
        // there is, straight into the day's partition. If the day has no partition yet, or an
        // event in `rest` is of another day, the COPY fails; the whole batch then goes through
        // the parent table, its days' partitions made first. If an event was stored before, the
        // unique index refuses the COPY; the batch then goes in row by row, skipping what is
        // stored.
        let mut table = match single_day(&batch) {
            Some(day) => partition_name(day),
            None => {
                // Rows routed through the parent table need their partitions first (or they
                // would land in the default one, which has no unique index): all of them.
                batch.extend(rest.by_ref());
                self.ensure_partitions(batch.iter().map(|e| e.event.at)).await?;
                PARENT_TABLE.to_string()
            }
        };
        let (new, detailed) = loop {
            let error = match copy_events(&mut tx, &table, rollout_id, &mut batch, &mut rest).await {
                Ok(copied) => break (copied.rows, copied.detailed),
                Err(sqlx::Error::Database(e)) => e,
                Err(e) => return Err(e.into()),
            };
            let through_parent = match error.code().as_deref() {
                Some(UNDEFINED_TABLE | CHECK_VIOLATION) if table != PARENT_TABLE => true,
                // (A partition made by hand with other bounds fails the partition check: same way.)
                Some(UNIQUE_VIOLATION | UNDEFINED_TABLE | CHECK_VIOLATION) => false,
                _ => return Err(sqlx::Error::Database(error).into()),
            };
            batch.extend(rest.by_ref());
            tx.rollback().await?;
            self.ensure_partitions(batch.iter().map(|e| e.event.at)).await?;
            tx = self.pool().begin().await?;
            if through_parent {
                table = PARENT_TABLE.to_string();
            } else {
                let new = insert_unseen(&mut tx, rollout_id, &batch).await?;
                break (new.len() as u64, detailed_deltas(&new));
            }
        };
        let counts = Ingested { accepted: new, duplicates: batch.len() as u64 - new };
        if new > 0 {
            if (new as usize) < SPARSE_MIN_EVENTS || detailed.len() * SPARSE_EVENTS_PER_KEY < new as usize {
                // The batch's additions to the rollups, as deltas: no lock, no read, so
                // concurrent batches never wait for each other; [`Store::fold_rollups`] adds
                // them up later.
                copy_rollup_rows(&mut tx, "event_rollup_deltas", rollout_id, &detailed).await?;
            } else {
                // A sparse batch (a backfill: about a rollup row per event): as deltas it would
                // write as many rows again, for the fold to move once more. It is added to the
                // rollup rows now, as a fold of its own.
                add_to_rollups(&mut tx, rollout_id, detailed, FoldLock::Take).await?;
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

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
        let rows = sqlx::query!(
            "DELETE FROM event_rollup_deltas
             WHERE ctid = ANY(ARRAY(SELECT ctid FROM event_rollup_deltas LIMIT $1))
             RETURNING rollout_id, minute, stage, variant, provider, file_type, size_class_mb, success, error, timeout,
                       critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb",
            FOLD_LIMIT
        )
        .fetch_all(&mut *tx)
        .await?;
        let folded = rows.len() as u64;
        let mut by_rollout: BTreeMap<i64, HashMap<RollupKey, Stats>> = BTreeMap::new();
        for r in rows {
            let rollout_id = r.rollout_id;
            let (key, stats) = rollup_of!(r);
            by_rollout.entry(rollout_id).or_default().entry(key).or_default().merge(&stats);
        }
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
                      memory_sum_mb AS "memory_sum_mb!", memory_max_mb AS "memory_max_mb!"
               FROM event_rollups_by_arm
               WHERE rollout_id = $1 AND minute >= $2 AND minute < $3 AND ($4::int IS NULL OR stage = $4)
               UNION ALL
               SELECT minute, stage, variant, success, error, timeout, critical, latency_sum_ms, latency_sketch,
                      memory_sum_mb, memory_max_mb
               FROM event_rollup_deltas
               WHERE rollout_id = $1 AND minute >= $2 AND minute < $3 AND ($4::int IS NULL OR stage = $4)
               UNION ALL
               SELECT minute, stage, variant, success, error, timeout, critical, latency_sum_ms, latency_sketch,
                      memory_sum_mb, memory_max_mb
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
                      memory_sum_mb AS "memory_sum_mb!", memory_max_mb AS "memory_max_mb!"
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

    /// Raw events of a window, for recomputation and audits.
    pub async fn raw_events(&self, rollout_id: i64, from: Timestamp, to: Timestamp) -> Result<Vec<NewEvent>> {
        let rows = sqlx::query!(
            "SELECT at, event_id, stage, variant, outcome, latency_ms, memory_mb, provider, file_type, size_bytes,
                    error_kind, critical
             FROM events WHERE rollout_id = $1 AND at >= $2 AND at < $3 ORDER BY at, event_id",
            rollout_id,
            from_timestamp(from),
            from_timestamp(to)
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(NewEvent {
                    event: UploadEvent {
                        event_id: r.event_id,
                        at: to_timestamp(r.at),
                        flag: None,
                        variant: variant_from(&r.variant)?,
                        outcome: Outcome::parse(&r.outcome).ok_or_else(|| StoreError::Corrupt(format!("outcome `{}`", r.outcome)))?,
                        latency_ms: r.latency_ms,
                        memory_mb: r.memory_mb,
                        provider: r.provider,
                        file_type: r.file_type,
                        size_bytes: r.size_bytes as u64,
                        error_kind: r.error_kind,
                        critical: r.critical,
                    },
                    stage: r.stage,
                    size_class_mb: 0,
                })
            })
            .collect()
    }

    pub async fn save_baseline(&self, rollout_id: i64, from: Timestamp, to: Timestamp, summary: &Summary, actor: &str) -> Result<Baseline> {
        let json = serde_json::to_value(summary).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query!(
            "INSERT INTO baselines (rollout_id, captured_by, window_from, window_to, summary)
             VALUES ($1, $2, $3, $4, $5) RETURNING id, captured_at",
            rollout_id,
            actor,
            from_timestamp(from),
            from_timestamp(to),
            json
        )
        .fetch_one(&mut *tx)
        .await?;
        let text = format!(
            "Recorded the baseline from {} control events ({} to {})",
            summary.count,
            app::format::utc_minute(from),
            app::format::utc_minute(to)
        );
        super::insert_audit(&mut tx, Some(rollout_id), actor, "baseline", &text, None, None, serde_json::json!({ "summary": summary }))
            .await?;
        tx.commit().await?;
        Ok(Baseline {
            id: row.id,
            captured_at: to_timestamp(row.captured_at),
            captured_by: actor.to_string(),
            from,
            to,
            summary: summary.clone(),
        })
    }

    pub async fn latest_baseline(&self, rollout_id: i64) -> Result<Option<Baseline>> {
        let row = sqlx::query!(
            "SELECT id, captured_at, captured_by, window_from, window_to, summary FROM baselines
             WHERE rollout_id = $1 ORDER BY id DESC LIMIT 1",
            rollout_id
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(Baseline {
                id: r.id,
                captured_at: to_timestamp(r.captured_at),
                captured_by: r.captured_by,
                from: to_timestamp(r.window_from),
                to: to_timestamp(r.window_to),
                summary: serde_json::from_value(r.summary).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })
        })
        .transpose()
    }

    /// Forgets events (and their ids) older than `cutoff`: whole daily partitions are dropped.
    pub async fn prune_events(&self, cutoff: Timestamp) -> Result<usize> {
        let cutoff_day = utc_day(cutoff);
        let partitions = sqlx::query_scalar!(
            r#"SELECT c.relname AS "name!" FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
               WHERE p.relname = 'events' AND c.relname ~ '^events_[0-9]{8}$'"#
        )
        .fetch_all(self.pool())
        .await?;
        let mut dropped = 0;
        for name in partitions {
            let Ok(day) = NaiveDate::parse_from_str(&name["events_".len()..], "%Y%m%d") else { continue };
            if day < cutoff_day {
                // `name` matched ^events_[0-9]{8}$ above: safe to splice.
                sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")).into_sql_str()).execute(self.pool()).await?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// Most delta rows one fold transaction takes (a backlog is folded in several).
const FOLD_LIMIT: i64 = 50_000;
/// A batch of at least [`SPARSE_MIN_EVENTS`] new events with a detailed rollup key per this
/// many events or fewer is sparse (a backfill): it adds to the rollup rows directly instead of
/// writing deltas. Smaller batches always write deltas: the fold finds their keys again in the
/// batches around them.
const SPARSE_EVENTS_PER_KEY: usize = 2;
const SPARSE_MIN_EVENTS: usize = 100;

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
struct Merged<K> {
    updated: Vec<(K, Stats)>,
    new: Vec<(K, Stats)>,
}

/// `deltas` added to the `stored` rows they belong to.
fn merge_stored<K: Eq + std::hash::Hash>(mut deltas: HashMap<K, Stats>, stored: Vec<(K, Stats)>) -> Merged<K> {
    let mut updated = Vec::with_capacity(stored.len());
    for (key, mut stats) in stored {
        if let Some(delta) = deltas.remove(&key) {
            stats.merge(&delta);
            updated.push((key, stats));
        }
    }
    Merged { updated, new: deltas.into_iter().collect() }
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
        .float8(s.memory_max_mb);
}

/// The rollup columns after the key columns, in table order (read by [`stats_at`]).
const STATS_COLUMNS: &str = "success, error, timeout, critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb";

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
    )
}

/// Whether a transaction adding to the rollup rows holds the fold lock already, or takes it
/// with its read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FoldLock {
    Held,
    Take,
}

/// Reads the stored detailed and by-arm rollup rows of the minutes in `minutes`, taking the
/// fold lock first if asked; one round trip. Each statement of a simple query reads with a
/// snapshot of its own, taken after the one before it ended: the reads see every fold
/// committed before the lock was granted.
async fn stored_rollups(
    tx: &mut sqlx::PgConnection,
    rollout_id: i64,
    minutes: &BTreeSet<Timestamp>,
    lock: FoldLock,
) -> Result<(Vec<(RollupKey, Stats)>, Vec<(ArmKey, Stats)>)> {
    // Only integers and times formatted here go into the statement: safe to splice.
    let minutes = minutes.iter().map(|m| format!("'{}'", from_timestamp(*m).format("%Y-%m-%d %H:%M:%S+00"))).collect::<Vec<_>>().join(", ");
    let statement = format!(
        "{lock}
         SELECT minute, stage, variant, {STATS_COLUMNS}, provider, file_type, size_class_mb
         FROM event_rollups WHERE rollout_id = {rollout_id} AND minute IN ({minutes});
         SELECT minute, stage, variant, {STATS_COLUMNS}
         FROM event_rollups_by_arm WHERE rollout_id = {rollout_id} AND minute IN ({minutes})",
        lock = if lock == FoldLock::Take { FOLD_LOCK_SQL } else { "" }
    );
    let rows = sqlx::raw_sql(AssertSqlSafe(statement)).fetch_all(&mut *tx).await?;
    let (mut detailed, mut by_arm) = (Vec::new(), Vec::new());
    // The lock's row has one column, a by-arm row 11, a detailed row 14.
    for row in rows.iter().filter(|r| r.len() > 1) {
        let minute: chrono::DateTime<chrono::Utc> = row.try_get(0)?;
        let variant: String = row.try_get(2)?;
        let arm = ArmKey { minute: to_timestamp(minute), stage: row.try_get(1)?, variant: variant_from(&variant)? };
        let stats = stats_at(row, 3)?;
        if row.len() == 11 {
            by_arm.push((arm, stats));
        } else {
            let key = RollupKey {
                minute: arm.minute,
                stage: arm.stage,
                variant: arm.variant,
                provider: row.try_get(11)?,
                file_type: row.try_get(12)?,
                size_class_mb: row.try_get(13)?,
            };
            detailed.push((key, stats));
        }
    }
    Ok((detailed, by_arm))
}

/// The detailed rollup row an event adds to.
fn rollup_key(e: &NewEvent) -> RollupKey {
    RollupKey {
        minute: minute_of(e.event.at),
        stage: e.stage,
        variant: e.event.variant,
        provider: e.event.provider.clone(),
        file_type: e.event.file_type.clone(),
        size_class_mb: e.size_class_mb,
    }
}

/// A batch's additions to the detailed rollup rows.
fn detailed_deltas(events: &[&NewEvent]) -> HashMap<RollupKey, Stats> {
    let mut detailed: HashMap<RollupKey, Stats> = HashMap::new();
    for e in events {
        detailed.entry(rollup_key(e)).or_default().add(&e.event);
    }
    detailed
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
async fn add_to_rollups(tx: &mut sqlx::PgConnection, rollout_id: i64, detailed: HashMap<RollupKey, Stats>, lock: FoldLock) -> Result<()> {
    let by_arm = by_arm_of(&detailed);
    let minutes = by_arm.keys().map(|k| k.minute).collect();
    let (stored, stored_by_arm) = stored_rollups(tx, rollout_id, &minutes, lock).await?;
    let detailed = merge_stored(detailed, stored);
    let by_arm: Vec<(ArmKey, Stats)> = {
        let merged = merge_stored(by_arm, stored_by_arm);
        merged.updated.into_iter().chain(merged.new).collect()
    };
    copy_rollup_rows(tx, "event_rollups", rollout_id, detailed.new.iter().map(|(k, s)| (k, s))).await?;
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
    match add_to_rollups(&mut savepoint, rollout_id, detailed.clone(), FoldLock::Held).await {
        Ok(()) => return Ok(savepoint.commit().await?),
        Err(error) if refused_data(&error) => savepoint.rollback().await?,
        // A connection, timeout or lock failure says nothing about the data: the deltas stay
        // pending (and counted by every read), and the next fold tries again.
        Err(other) => return Err(other),
    }
    for (key, stats) in detailed {
        let mut savepoint = tx.begin().await?;
        let one = HashMap::from([(key.clone(), stats.clone())]);
        match add_to_rollups(&mut savepoint, rollout_id, one, FoldLock::Held).await {
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
async fn copy_rollup_rows<'a>(
    tx: &mut sqlx::PgConnection,
    table: &str,
    rollout_id: i64,
    rows: impl IntoIterator<Item = (&'a RollupKey, &'a Stats)>,
) -> Result<()> {
    let mut payload = BinaryRows::new(15);
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
                       timeout, critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb)
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
                                        error, timeout, critical, latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb)
             SELECT $1, * FROM UNNEST($2::timestamptz[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[],
                                      $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::float8[], $13::bytea[],
                                      $14::float8[], $15::float8[])
             ON CONFLICT (rollout_id, minute, stage, variant, provider, file_type, size_class_mb) DO UPDATE SET
                 success = EXCLUDED.success, error = EXCLUDED.error, timeout = EXCLUDED.timeout,
                 critical = EXCLUDED.critical, latency_sum_ms = EXCLUDED.latency_sum_ms,
                 latency_sketch = EXCLUDED.latency_sketch, memory_sum_mb = EXCLUDED.memory_sum_mb,
                 memory_max_mb = EXCLUDED.memory_max_mb
         ), by_arm AS (
             INSERT INTO event_rollups_by_arm (rollout_id, minute, stage, variant, success, error, timeout, critical,
                                               latency_sum_ms, latency_sketch, memory_sum_mb, memory_max_mb)
             SELECT $1, * FROM UNNEST($16::timestamptz[], $17::int[], $18::text[], $19::int8[], $20::int8[], $21::int8[],
                                      $22::int8[], $23::float8[], $24::bytea[], $25::float8[], $26::float8[])
             ON CONFLICT (rollout_id, minute, stage, variant) DO UPDATE SET
                 success = EXCLUDED.success, error = EXCLUDED.error, timeout = EXCLUDED.timeout,
                 critical = EXCLUDED.critical, latency_sum_ms = EXCLUDED.latency_sum_ms,
                 latency_sketch = EXCLUDED.latency_sketch, memory_sum_mb = EXCLUDED.memory_sum_mb,
                 memory_max_mb = EXCLUDED.memory_max_mb
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
        &a.memory_max_mb
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
