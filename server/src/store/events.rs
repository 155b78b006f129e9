//! Raw events: daily partitions, ingest by `COPY` (or row by row when some were stored before),
//! the ids already seen, stage spans, raw reads for recomputation, and retention. Each batch's
//! additions to the rollups go in the same transaction ([`super::rollups`]).

use super::copy::BinaryRows;
use super::rollups::{
    FoldLock, RollupKey, SPARSE_EVENTS_PER_KEY, SPARSE_MIN_EVENTS, add_to_rollups, copy_rollup_rows, minute_of, variant_from,
};
use super::{Result, Store, StoreError, from_timestamp, to_timestamp};
use app::domain::bucketing::unit_key;
use app::domain::event::{Outcome, UploadEvent};
use app::domain::stats::Stats;
use app::domain::units::Timestamp;
use chrono::NaiveDate;
use sqlx::{AssertSqlSafe, SqlSafeStr};
use std::collections::{BTreeSet, HashMap, HashSet};

mod units;

use units::UnitsSeen;

/// An event ready to store: parsed, with the stage it happened in and its size class.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event: UploadEvent,
    pub stage: i32,
    pub size_class_mb: i32,
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

/// What a batch's `COPY` wrote: its rows, and their additions to the detailed rollups and to
/// the units seen.
#[derive(Default)]
struct Copied {
    rows: u64,
    detailed: HashMap<RollupKey, Stats>,
    units: UnitsSeen,
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
                      size_bytes, error_kind, critical, unit_key) FROM STDIN WITH (FORMAT binary)"
    );
    let mut copy = tx.copy_in_raw(&statement).await?;
    let mut rows = BinaryRows::new(14);
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
                .bool(e.critical)
                .optional_int8(e.unit.as_deref().map(unit_key));
            copied.rows += 1;
            copied.detailed.entry(rollup_key(new)).or_default().add(e);
            copied.units.add(new);
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
                             provider, file_type, size_bytes, error_kind, critical, unit_key)
         SELECT $1, * FROM UNNEST($2::timestamptz[], $3::text[], $4::int[], $5::text[], $6::text[],
                                  $7::float8[], $8::float8[], $9::text[], $10::text[], $11::int8[],
                                  $12::text[], $13::bool[], $14::int8[])
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
        &batch.iter().map(|e| e.event.critical).collect::<Vec<_>>(),
        &batch.iter().map(|e| e.event.unit.as_deref().map(unit_key)).collect::<Vec<Option<i64>>>() as _
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
        let (new, detailed, units) = loop {
            let error = match copy_events(&mut tx, &table, rollout_id, &mut batch, &mut rest).await {
                Ok(copied) => break (copied.rows, copied.detailed, copied.units),
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
                break (new.len() as u64, detailed_deltas(&new), UnitsSeen::of(new.iter().copied()));
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
                add_to_rollups(&mut tx, rollout_id, &detailed, FoldLock::Take).await?;
            }
            units.record(&mut tx, rollout_id).await?;
        }
        tx.commit().await?;
        Ok(counts)
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
                        unit: None,
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

    /// Forgets events (and their ids) older than `cutoff`: whole daily partitions are dropped,
    /// and the units last seen before the day the cutoff falls in (the raw events kept are those
    /// of whole days, and the live count keeps the units they name).
    pub async fn prune_events(&self, cutoff: Timestamp) -> Result<usize> {
        let cutoff_day = utc_day(cutoff);
        let day_start = Timestamp(cutoff.millis().div_euclid(86_400_000) * 86_400_000);
        sqlx::query!("DELETE FROM stage_units WHERE last_seen < $1", from_timestamp(day_start)).execute(self.pool()).await?;
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
