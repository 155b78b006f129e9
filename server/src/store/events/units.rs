//! The distinct units each stage's arms name: recorded with every batch in `stage_units`, and
//! counted live or from the raw events for the sample-ratio check.

use super::NewEvent;
use crate::store::{Result, Store, from_timestamp};
use app::domain::bucketing::unit_key;
use app::domain::event::Variant;
use app::domain::units::Timestamp;
use std::collections::BTreeMap;

/// The units a batch names, by (stage, treatment?, unit key), each with its latest upload.
#[derive(Default)]
pub(super) struct UnitsSeen(BTreeMap<(i32, bool, i64), Timestamp>);

impl UnitsSeen {
    pub(super) fn add(&mut self, new: &NewEvent) {
        if let Some(unit) = &new.event.unit {
            let key = (new.stage, new.event.variant == Variant::Treatment, unit_key(unit));
            let last = self.0.entry(key).or_insert(new.event.at);
            *last = (*last).max(new.event.at);
        }
    }

    pub(super) fn of<'e>(events: impl IntoIterator<Item = &'e NewEvent>) -> UnitsSeen {
        let mut seen = UnitsSeen::default();
        events.into_iter().for_each(|e| seen.add(e));
        seen
    }

    /// Records them in `stage_units` (a unit seen before keeps its latest time). The keys go in
    /// their sorted order, so two batches naming the same units lock them in one order and
    /// never deadlock.
    pub(super) async fn record(&self, tx: &mut sqlx::PgConnection, rollout_id: i64) -> sqlx::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let n = self.0.len();
        let (mut stages, mut arms, mut keys, mut times) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for (&(stage, treatment, key), &at) in &self.0 {
            stages.push(stage);
            arms.push(treatment);
            keys.push(key);
            times.push(from_timestamp(at));
        }
        sqlx::query!(
            "INSERT INTO stage_units (rollout_id, stage, treatment, unit_key, last_seen)
             SELECT $1, * FROM UNNEST($2::int[], $3::bool[], $4::int8[], $5::timestamptz[])
             ON CONFLICT (rollout_id, stage, treatment, unit_key)
             DO UPDATE SET last_seen = EXCLUDED.last_seen WHERE stage_units.last_seen < EXCLUDED.last_seen",
            rollout_id,
            &stages,
            &arms,
            &keys,
            &times
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

impl Store {
    /// The distinct units per arm (treatment, control) that uploads of stage `stage` named from
    /// `from` on: the live count, kept with each batch. (0, 0) when none named one.
    pub async fn units_seen(&self, rollout_id: i64, stage: i32, from: Timestamp) -> Result<(u64, u64)> {
        let row = sqlx::query!(
            r#"SELECT count(*) FILTER (WHERE treatment) AS "treatment!", count(*) FILTER (WHERE NOT treatment) AS "control!"
               FROM stage_units WHERE rollout_id = $1 AND stage = $2 AND last_seen >= $3"#,
            rollout_id,
            stage,
            from_timestamp(from)
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.treatment as u64, row.control as u64))
    }

    /// The same counted from the raw events of `[from, to)`: what a judgement of a past stay
    /// saw, and the recomputation of the live count.
    pub async fn units_between(&self, rollout_id: i64, stage: i32, from: Timestamp, to: Timestamp) -> Result<(u64, u64)> {
        let row = sqlx::query!(
            r#"SELECT count(DISTINCT unit_key) FILTER (WHERE variant = 'treatment') AS "treatment!",
                      count(DISTINCT unit_key) FILTER (WHERE variant = 'control') AS "control!"
               FROM events WHERE rollout_id = $1 AND stage = $2 AND at >= $3 AND at < $4 AND unit_key IS NOT NULL"#,
            rollout_id,
            stage,
            from_timestamp(from),
            from_timestamp(to)
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.treatment as u64, row.control as u64))
    }
}
