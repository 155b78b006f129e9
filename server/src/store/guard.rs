//! The guard loop's state: its lease, sustained-condition timers and alerts.

use super::{Result, Store, StoreError, from_timestamp, insert_audit, to_timestamp};
use app::domain::guard::{Condition, Sustained};
use app::domain::units::Timestamp;
use app::model::Alert;
use sqlx::{Postgres, Transaction};

/// The key of the advisory lock one guard tick holds at a time, across every replica.
const GUARD_LOCK: (i32, i32) = (7002, 0);

/// How long a lease may sit idle before Postgres ends it: a replica frozen while it holds the
/// lease (stopped, swapped out, its event loop stuck) gives it up to another after this. A tick
/// works on other connections and renews the lease ([`GuardLease::renew`]) before each
/// rollout and before acting on one, so only a tick stalled this long between two renewals
/// loses it — and then stops at its next renewal instead of acting beside the new holder.
pub const GUARD_LEASE_IDLE: &str = "30s";

/// The right to run one guard tick: a transaction holding the guard's advisory lock,
/// released when the lease ends however the tick ends (a crashed process's connection closes).
pub struct GuardLease(Transaction<'static, Postgres>);

impl GuardLease {
    pub async fn release(self) -> Result<()> {
        Ok(self.0.rollback().await?)
    }

    /// Proves the lease is still held and restarts its idle clock; an error when Postgres ended
    /// it (idle past [`GUARD_LEASE_IDLE`]: another process may hold the guard now).
    pub async fn renew(&mut self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&mut *self.0).await?;
        Ok(())
    }
}

impl Store {
    /// The guard's lease if no other process holds it now; `None` when one does.
    pub async fn try_guard_lease(&self) -> Result<Option<GuardLease>> {
        let mut tx = self.lease_transaction().await?;
        let leading: bool = sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1, $2) AS "got!""#, GUARD_LOCK.0, GUARD_LOCK.1)
            .fetch_one(&mut *tx)
            .await?;
        Ok(leading.then_some(GuardLease(tx)))
    }

    /// The guard's lease, waiting for a tick in progress elsewhere to end.
    pub async fn guard_lease(&self) -> Result<GuardLease> {
        let mut tx = self.lease_transaction().await?;
        sqlx::query!("SELECT pg_advisory_xact_lock($1, $2)", GUARD_LOCK.0, GUARD_LOCK.1).execute(&mut *tx).await?;
        Ok(GuardLease(tx))
    }

    /// A transaction Postgres ends once it has been idle for [`GUARD_LEASE_IDLE`].
    async fn lease_transaction(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', $1, true)").bind(GUARD_LEASE_IDLE).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// The timers of the conditions that held at the last tick.
    pub async fn sustained(&self, rollout_id: i64) -> Result<Vec<Sustained>> {
        let rows =
            sqlx::query!("SELECT condition, since FROM guard_conditions WHERE rollout_id = $1", rollout_id).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Condition::parse(&r.condition).map(|condition| Sustained { condition, since: to_timestamp(r.since) }))
            .collect())
    }

    /// Starts timers for conditions that hold now (keeping running ones) and clears the rest,
    /// and any started before `stage_from`: a condition of the stage before is not this one's.
    pub async fn set_holding(&self, rollout_id: i64, holding: &[Condition], now: Timestamp, stage_from: Timestamp) -> Result<()> {
        let names: Vec<String> = holding.iter().map(|c| c.as_str().to_string()).collect();
        let mut tx = self.pool().begin().await?;
        sqlx::query!(
            "DELETE FROM guard_conditions WHERE rollout_id = $1 AND (NOT (condition = ANY($2)) OR since < $3)",
            rollout_id,
            &names,
            from_timestamp(stage_from)
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO guard_conditions (rollout_id, condition, since) SELECT $1, unnest($2::text[]), $3
             ON CONFLICT (rollout_id, condition) DO NOTHING",
            rollout_id,
            &names,
            from_timestamp(now)
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Raises an alert unless one of the same kind is open, or one raised since `episode` (the
    /// start of the condition behind it) was acknowledged; returns it if it is new.
    pub async fn raise_alert(
        &self,
        rollout_id: i64,
        kind: &str,
        message: &str,
        evidence: serde_json::Value,
        episode: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Alert>> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query!(
            "INSERT INTO alerts (rollout_id, kind, message, evidence, raised_at)
             SELECT $1, $2, $3, $4, $5
             WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE rollout_id = $1 AND kind = $2 AND acknowledged_at IS NOT NULL
                                                      AND raised_at >= $6)
             ON CONFLICT (rollout_id, kind) WHERE acknowledged_at IS NULL DO NOTHING
             RETURNING id",
            rollout_id,
            kind,
            message,
            evidence.clone(),
            from_timestamp(now),
            from_timestamp(episode)
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let summary = format!("Review needed: {message}");
        let actor = crate::actors::GUARD_ACTOR;
        let rollout = super::load_rollout(&mut tx, rollout_id, super::Lock::ForUpdate).await?;
        let announcement = crate::webhooks::payload::Announcement {
            event: app::domain::webhook::Event::Alert,
            rollout_id,
            plan: &rollout.plan,
            state: &rollout.state,
            summary: &summary,
            actor,
            reason: None,
            evidence: &evidence,
            at: now,
        };
        super::webhooks::enqueue(&mut tx, &announcement).await?;
        insert_audit(&mut tx, Some(rollout_id), actor, "alert", &summary, None, None, evidence, Some(now)).await?;
        tx.commit().await?;
        Ok(Some(Alert {
            id: row.id,
            kind: kind.into(),
            message: message.into(),
            raised_at: now,
            acknowledged_by: None,
            acknowledged_at: None,
            acknowledgement: None,
        }))
    }

    /// The rollout's alerts, open ones first, newest first.
    pub async fn alerts(&self, rollout_id: i64) -> Result<Vec<Alert>> {
        let rows = sqlx::query!(
            "SELECT id, kind, message, raised_at, acknowledged_by, acknowledged_at, acknowledgement FROM alerts
             WHERE rollout_id = $1 ORDER BY acknowledged_at IS NOT NULL, id DESC LIMIT 50",
            rollout_id
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Alert {
                id: r.id,
                kind: r.kind,
                message: r.message,
                raised_at: to_timestamp(r.raised_at),
                acknowledged_by: r.acknowledged_by,
                acknowledged_at: r.acknowledged_at.map(to_timestamp),
                acknowledgement: r.acknowledgement,
            })
            .collect())
    }

    /// Acknowledges an open alert with the approver's written note.
    pub async fn acknowledge_alert(&self, rollout_id: i64, alert_id: i64, actor: &str, note: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let message = sqlx::query_scalar!(
            "UPDATE alerts SET acknowledged_by = $3, acknowledged_at = $4, acknowledgement = $5
             WHERE rollout_id = $1 AND id = $2 AND acknowledged_at IS NULL RETURNING message",
            rollout_id,
            alert_id,
            actor,
            from_timestamp(now),
            note
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("open alert"))?;
        let summary = format!("Acknowledged the alert: {message}");
        insert_audit(
            &mut tx,
            Some(rollout_id),
            actor,
            "acknowledge",
            &summary,
            Some(note),
            None,
            serde_json::json!({ "alert_id": alert_id }),
            Some(now),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
