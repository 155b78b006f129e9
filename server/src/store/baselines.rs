//! Frozen baselines: a window's control-arm summary, kept as it was when captured.

use super::{Result, Store, StoreError, from_timestamp, to_timestamp};
use app::domain::stats::Summary;
use app::domain::units::Timestamp;

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

impl Store {
    /// Keeps `summary` of the control arm over `(from, to]` as the rollout's baseline from `at`
    /// (the service's time) on, with its audit entry.
    pub async fn save_baseline(
        &self,
        rollout_id: i64,
        from: Timestamp,
        to: Timestamp,
        summary: &Summary,
        actor: &str,
        at: Timestamp,
    ) -> Result<Baseline> {
        let json = serde_json::to_value(summary).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query!(
            "INSERT INTO baselines (rollout_id, captured_by, window_from, window_to, summary, captured_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, captured_at",
            rollout_id,
            actor,
            from_timestamp(from),
            from_timestamp(to),
            json,
            from_timestamp(at)
        )
        .fetch_one(&mut *tx)
        .await?;
        let text = format!(
            "Recorded the baseline from {} control events ({} to {})",
            summary.count,
            app::format::utc_minute(from),
            app::format::utc_minute(to)
        );
        super::insert_audit(
            &mut tx,
            Some(rollout_id),
            actor,
            "baseline",
            &text,
            None,
            None,
            serde_json::json!({ "summary": summary }),
            Some(at),
        )
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

    /// The baseline in force now: the last captured.
    pub async fn latest_baseline(&self, rollout_id: i64) -> Result<Option<Baseline>> {
        self.baseline_at(rollout_id, None).await
    }

    /// The baseline in force at `at` (the last captured by then; `None`: now).
    pub async fn baseline_at(&self, rollout_id: i64, at: Option<Timestamp>) -> Result<Option<Baseline>> {
        let row = sqlx::query!(
            "SELECT id, captured_at, captured_by, window_from, window_to, summary FROM baselines
             WHERE rollout_id = $1 AND ($2::timestamptz IS NULL OR captured_at <= $2) ORDER BY id DESC LIMIT 1",
            rollout_id,
            at.map(from_timestamp)
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
}
