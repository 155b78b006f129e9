//! Webhooks and their delivery outbox.

use super::{Result, Store, StoreError, from_timestamp, insert_audit, to_timestamp};
use crate::webhooks::payload::{Announcement, Attempt, Event};
use app::domain::units::Timestamp;
use app::model::{DeliveryView, WebhookView};
use sqlx::postgres::PgConnection;

/// A delivery claimed for sending.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub event: String,
    pub payload: serde_json::Value,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// Writes one delivery of the announcement per enabled webhook subscribed to its event, inside
/// the caller's transaction (the outbox).
pub(crate) async fn enqueue(conn: &mut PgConnection, announcement: &Announcement<'_>) -> Result<()> {
    let (event, payload, now) = (announcement.event, crate::webhooks::payload::payload(announcement), announcement.at);
    sqlx::query!(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, created_at, next_attempt_at)
         SELECT id, $1, $2, $3, $3 FROM webhooks
         WHERE disabled_at IS NULL AND (cardinality(events) = 0 OR $1 = ANY(events))",
        event.as_str(),
        payload,
        from_timestamp(now)
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Every webhook's stored secret (sealed or not), for resealing.
    pub async fn webhook_secrets(&self) -> Result<Vec<(i64, String)>> {
        Ok(sqlx::query!("SELECT id, secret FROM webhooks ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|r| (r.id, r.secret))
            .collect())
    }

    pub async fn set_webhook_secret(&self, id: i64, stored: &str) -> Result<()> {
        sqlx::query!("UPDATE webhooks SET secret = $2 WHERE id = $1", id, stored).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn create_webhook(
        &self,
        url: &str,
        secret: &str,
        events: &[Event],
        description: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<WebhookView> {
        let names: Vec<String> = events.iter().map(|e| e.as_str().to_string()).collect();
        let mut tx = self.pool().begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO webhooks (url, secret, events, description, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id",
            url,
            secret,
            &names,
            description,
            actor,
            from_timestamp(now)
        )
        .fetch_one(&mut *tx)
        .await?;
        let what = if names.is_empty() { "every event".to_string() } else { names.join(", ") };
        let summary = format!("Added webhook {id} ({what})");
        insert_audit(&mut tx, None, actor, "webhook_created", &summary, None, None, serde_json::json!({ "webhook_id": id }), None).await?;
        tx.commit().await?;
        Ok(WebhookView {
            id,
            url: url.into(),
            events: names,
            description: description.into(),
            created_at: now,
            created_by: actor.into(),
            disabled: false,
        })
    }

    pub async fn webhooks(&self) -> Result<Vec<WebhookView>> {
        let rows = sqlx::query!(
            "SELECT id, url, events, description, created_by, created_at, disabled_at FROM webhooks
             ORDER BY disabled_at IS NOT NULL, id"
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| WebhookView {
                id: r.id,
                url: r.url,
                events: r.events,
                description: r.description,
                created_at: to_timestamp(r.created_at),
                created_by: r.created_by,
                disabled: r.disabled_at.is_some(),
            })
            .collect())
    }

    /// Stops a webhook; deliveries not yet made are dropped from the queue (kept in the log).
    pub async fn disable_webhook(&self, id: i64, actor: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query!("UPDATE webhooks SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL", id, from_timestamp(now))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("webhook"));
        }
        sqlx::query!(
            "UPDATE webhook_deliveries SET failed_at = $2, last_error = coalesce(last_error, 'webhook removed')
             WHERE webhook_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
            id,
            from_timestamp(now)
        )
        .execute(&mut *tx)
        .await?;
        let summary = format!("Removed webhook {id}");
        insert_audit(&mut tx, None, actor, "webhook_removed", &summary, None, None, serde_json::json!({ "webhook_id": id }), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A webhook's newest deliveries, newest first.
    pub async fn deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<DeliveryView>> {
        let rows = sqlx::query!(
            "SELECT id, webhook_id, event, payload, created_at, attempts, next_attempt_at, last_status, last_error,
                    delivered_at, failed_at
             FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2",
            webhook_id,
            limit
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let state = match (r.delivered_at, r.failed_at, r.attempts) {
                    (Some(_), _, _) => "delivered",
                    (None, Some(_), _) => "failed",
                    (None, None, 0) => "pending",
                    (None, None, _) => "retrying",
                };
                DeliveryView {
                    id: r.id,
                    webhook_id: r.webhook_id,
                    event: r.event,
                    payload: r.payload.to_string(),
                    created_at: to_timestamp(r.created_at),
                    attempts: r.attempts as u32,
                    state: state.into(),
                    next_attempt_at: r.next_attempt_at.filter(|_| state == "pending" || state == "retrying").map(to_timestamp),
                    last_status: r.last_status.map(|s| s as u16),
                    last_error: r.last_error,
                    delivered_at: r.delivered_at.map(to_timestamp),
                }
            })
            .collect())
    }

    /// Forgets the deliveries that finished — delivered, or given up on — before `cutoff`; the
    /// log keeps a retention's worth of them. A delivery still due (the outbox) is never
    /// forgotten, however old: nothing undelivered is lost to retention.
    pub async fn prune_deliveries(&self, cutoff: Timestamp) -> Result<u64> {
        let pruned = sqlx::query!("DELETE FROM webhook_deliveries WHERE COALESCE(delivered_at, failed_at) < $1", from_timestamp(cutoff))
            .execute(self.pool())
            .await?;
        Ok(pruned.rows_affected())
    }

    /// Claims up to `limit` deliveries due at `now` until `lease_until`: another process skips
    /// them meanwhile, and if this one dies they fall due again when the lease ends.
    pub async fn claim_deliveries(&self, now: Timestamp, lease_until: Timestamp, limit: i64) -> Result<Vec<DueDelivery>> {
        let rows = sqlx::query!(
            "UPDATE webhook_deliveries d SET next_attempt_at = $2
             FROM webhooks w
             WHERE w.id = d.webhook_id AND d.id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING d.id, w.url, w.secret, d.event, d.payload, d.attempts",
            from_timestamp(now),
            from_timestamp(lease_until),
            limit
        )
        .fetch_all(self.pool())
        .await?;
        let mut due: Vec<DueDelivery> = rows
            .into_iter()
            .map(|r| DueDelivery { id: r.id, url: r.url, secret: r.secret, event: r.event, payload: r.payload, attempts: r.attempts })
            .collect();
        due.sort_by_key(|d| d.id);
        Ok(due)
    }

    /// Records an attempt: delivered, to be retried at `retry_at`, or given up (`None`).
    pub async fn record_attempt(&self, id: i64, attempt: &Attempt, now: Timestamp, retry_at: Option<Timestamp>) -> Result<()> {
        let (delivered, status, error) = match attempt {
            Attempt::Delivered { status } => (true, Some(i32::from(*status)), None),
            Attempt::Failed { status, error } => (false, status.map(i32::from), Some(error.as_str())),
        };
        let now = from_timestamp(now);
        sqlx::query!(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
                    delivered_at = CASE WHEN $4 THEN $5::timestamptz END,
                    failed_at = CASE WHEN NOT $4 AND $6::timestamptz IS NULL THEN $5::timestamptz END,
                    next_attempt_at = CASE WHEN $4 THEN NULL ELSE $6 END
             WHERE id = $1",
            id,
            status,
            error,
            delivered,
            now,
            retry_at.map(from_timestamp)
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
