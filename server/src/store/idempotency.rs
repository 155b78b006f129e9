//! Idempotency keys: the first request with a key claims it; retries get its stored answer.

use super::{Result, Store, from_timestamp};
use app::domain::units::Timestamp;

/// What [`Store::purge_expired`] deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub idempotency_keys: u64,
    pub sessions: u64,
    pub trusted_devices: u64,
}

/// What a request with an `Idempotency-Key` should do.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// First use: act, then [`Store::complete_idempotent`].
    New,
    /// Answered before: replay this.
    Done { status: u16, response: serde_json::Value },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

impl Store {
    /// Claims `key` for a request whose body hashes to `request_hash`. A claim left unanswered
    /// for a minute (its server died) may be taken over; a key older than a day is forgotten
    /// (the purge deletes it; until then it is claimed afresh).
    pub async fn claim_idempotent(&self, key: &str, request_hash: &str) -> Result<Claim> {
        let claimed = sqlx::query_scalar!(
            r#"INSERT INTO idempotency_keys (key, request_hash) VALUES ($1, $2)
               ON CONFLICT (key) DO UPDATE SET request_hash = EXCLUDED.request_hash, created_at = now(), status = NULL, response = NULL
                   WHERE (idempotency_keys.status IS NULL AND idempotency_keys.created_at < now() - interval '1 minute'
                          AND idempotency_keys.request_hash = EXCLUDED.request_hash)
                      OR idempotency_keys.created_at < now() - interval '24 hours'
               RETURNING key"#,
            key,
            request_hash
        )
        .fetch_optional(self.pool())
        .await?;
        if claimed.is_some() {
            return Ok(Claim::New);
        }
        let row =
            sqlx::query!("SELECT request_hash, status, response FROM idempotency_keys WHERE key = $1", key).fetch_one(self.pool()).await?;
        Ok(match (row.request_hash == request_hash, row.status, row.response) {
            (false, _, _) => Claim::Mismatch,
            (true, Some(status), Some(response)) => Claim::Done { status: status as u16, response },
            _ => Claim::InProgress,
        })
    }

    /// Deletes what has expired: idempotency keys older than a day and sessions past their end.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<Purged> {
        let idempotency_keys = sqlx::query!("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'")
            .execute(self.pool())
            .await?
            .rows_affected();
        let sessions =
            sqlx::query!("DELETE FROM sessions WHERE expires_at < $1", from_timestamp(now)).execute(self.pool()).await?.rows_affected();
        let trusted_devices = sqlx::query!("DELETE FROM trusted_devices WHERE expires_at < $1", from_timestamp(now))
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(Purged { idempotency_keys, sessions, trusted_devices })
    }

    /// Stores the answer to a claimed key.
    pub async fn complete_idempotent(&self, key: &str, status: u16, response: &serde_json::Value) -> Result<()> {
        sqlx::query!("UPDATE idempotency_keys SET status = $2, response = $3 WHERE key = $1", key, status as i16, response)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
