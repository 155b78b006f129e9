//! What the operations endpoints read: the webhook outbox's depth, each live rollout's stage
//! and open alerts (for `/metrics`), and the migrations applied (for `/readyz`).

use super::{Result, Store};
use crate::telemetry::RolloutGauge;
use chrono::Utc;

/// The webhook outbox at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outbox {
    pub pending: i64,
    pub failed: i64,
    pub oldest_pending_seconds: f64,
}

impl Store {
    pub async fn outbox(&self) -> Result<Outbox> {
        let row = sqlx::query!(
            r#"SELECT count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL) AS "pending!",
                      count(*) FILTER (WHERE failed_at IS NOT NULL) AS "failed!",
                      min(created_at) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL) AS oldest
               FROM webhook_deliveries"#
        )
        .fetch_one(self.pool())
        .await?;
        let oldest_pending_seconds = row.oldest.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        Ok(Outbox { pending: row.pending, failed: row.failed, oldest_pending_seconds })
    }

    /// Every rollout that is not complete: its stage, status, served percentage and open alerts.
    pub async fn rollout_gauges(&self) -> Result<Vec<RolloutGauge>> {
        let rows = sqlx::query!(
            r#"SELECT r.id, r.flag_key, r.status, r.stage, r.flag_enabled, r.flag_percentage,
                      (SELECT count(*) FROM alerts a WHERE a.rollout_id = r.id AND a.acknowledged_at IS NULL) AS "open_alerts!"
               FROM rollouts r WHERE r.status <> 'complete' ORDER BY r.id"#
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RolloutGauge {
                id: r.id,
                flag: r.flag_key,
                status: r.status,
                stage: r.stage.max(0) as u32,
                percentage: if r.flag_enabled { f64::from(r.flag_percentage) } else { 0.0 },
                open_alerts: r.open_alerts,
                figures: None,
            })
            .collect())
    }

    /// The versions of the migrations applied successfully, ascending. (sqlx's own table, which
    /// the compile-time check's database need not have: checked at run time.)
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let versions = sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version");
        Ok(versions.fetch_all(self.pool()).await?)
    }

    /// The oldest binary (by the newest migration it knows) that may run on the schema
    /// (`schema_floor`, migration 0021; checked at run time like the table above).
    pub async fn schema_floor(&self) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT oldest_binary FROM schema_floor").fetch_one(self.pool()).await?)
    }
}
