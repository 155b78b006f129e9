//! API tokens and share links: created, listed, used (each use resolves to a [`Holder`]) and
//! revoked; only their hashes are stored.

use super::{Holder, scope_texts, scopes_from};
use crate::store::{Result, Store, StoreError, from_timestamp, insert_audit, to_timestamp};
use app::domain::access::Scope;
use app::domain::units::Timestamp;
use app::model::{ShareLinkView, TokenView};

impl Store {
    pub async fn create_token(&self, name: &str, hash: &[u8], scopes: &[Scope], actor: &str, now: Timestamp) -> Result<TokenView> {
        let mut tx = self.pool().begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO api_tokens (name, hash, scopes, created_at, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            name,
            hash,
            &scope_texts(scopes),
            from_timestamp(now),
            actor
        )
        .fetch_one(&mut *tx)
        .await?;
        let listed: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let text = format!("Created API token {name} ({})", listed.join(", "));
        insert_audit(&mut tx, None, actor, "token_created", &text, None, None, serde_json::json!({ "token_id": id }), None).await?;
        tx.commit().await?;
        Ok(TokenView {
            id,
            name: name.into(),
            scopes: scopes.to_vec(),
            created_at: now,
            created_by: actor.into(),
            last_used_at: None,
            revoked: false,
        })
    }

    pub async fn tokens(&self) -> Result<Vec<TokenView>> {
        let rows = sqlx::query!(
            "SELECT id, name, scopes, created_at, created_by, last_used_at, revoked_at FROM api_tokens
             ORDER BY revoked_at IS NOT NULL, name, id"
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TokenView {
                    id: r.id,
                    name: r.name,
                    scopes: scopes_from(&r.scopes)?,
                    created_at: to_timestamp(r.created_at),
                    created_by: r.created_by,
                    last_used_at: r.last_used_at.map(to_timestamp),
                    revoked: r.revoked_at.is_some(),
                })
            })
            .collect()
    }

    /// The holder of an unrevoked token, marking it used now. The mark is kept to the minute: a
    /// service sending a batch a second would otherwise write (and wait for the disk) on every
    /// request just to say so. A database that takes no writes (read-only, or out of disk)
    /// still identifies the holder, unmarked, so reads go on.
    pub async fn use_token(&self, hash: &[u8], now: Timestamp) -> Result<Option<Holder>> {
        match self.use_and_mark_token(hash, now).await {
            Err(error) if error.is_unavailable() => {
                let row = sqlx::query!("SELECT id, name, scopes FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL", hash)
                    .fetch_optional(self.pool())
                    .await?;
                tracing::debug!(%error, "token used but not marked: the database takes no writes");
                row.map(|r| Ok(Holder::Token { id: r.id, name: r.name, scopes: scopes_from(&r.scopes)? })).transpose()
            }
            marked => marked,
        }
    }

    async fn use_and_mark_token(&self, hash: &[u8], now: Timestamp) -> Result<Option<Holder>> {
        let row = sqlx::query!(
            r#"WITH token AS (SELECT id, name, scopes, last_used_at FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL),
                    marked AS (
                        UPDATE api_tokens t SET last_used_at = $2 FROM token
                        WHERE t.id = token.id AND (token.last_used_at IS NULL OR token.last_used_at <= $2::timestamptz - interval '1 minute')
                    )
               SELECT id AS "id!", name AS "name!", scopes AS "scopes!" FROM token"#,
            hash,
            from_timestamp(now)
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok(Holder::Token { id: r.id, name: r.name, scopes: scopes_from(&r.scopes)? })).transpose()
    }

    pub async fn revoke_token(&self, id: i64, actor: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let name = sqlx::query_scalar!(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $2), revoked_by = coalesce(revoked_by, $3) WHERE id = $1 RETURNING name",
            id,
            from_timestamp(now),
            actor
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
        insert_audit(
            &mut tx,
            None,
            actor,
            "token_revoked",
            &format!("Revoked API token {name}"),
            None,
            None,
            serde_json::json!({ "token_id": id }),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_share_link(
        &self,
        rollout_id: i64,
        label: &str,
        hash: &[u8],
        expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<ShareLinkView> {
        let mut tx = self.pool().begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO share_links (rollout_id, label, hash, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id",
            rollout_id,
            label,
            hash,
            from_timestamp(now),
            actor,
            from_timestamp(expires)
        )
        .fetch_one(&mut *tx)
        .await?;
        let text = format!("Created share link \"{label}\" to the status page, valid until {}", app::format::utc_minute(expires));
        insert_audit(
            &mut tx,
            Some(rollout_id),
            actor,
            "share_link_created",
            &text,
            None,
            None,
            serde_json::json!({ "share_link_id": id }),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(ShareLinkView {
            id,
            rollout_id,
            label: label.into(),
            created_at: now,
            created_by: actor.into(),
            expires_at: expires,
            revoked: false,
        })
    }

    pub async fn share_links(&self) -> Result<Vec<ShareLinkView>> {
        let rows = sqlx::query!(
            "SELECT id, rollout_id, label, created_at, created_by, expires_at, revoked_at FROM share_links
             ORDER BY revoked_at IS NOT NULL, expires_at DESC"
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ShareLinkView {
                id: r.id,
                rollout_id: r.rollout_id,
                label: r.label,
                created_at: to_timestamp(r.created_at),
                created_by: r.created_by,
                expires_at: to_timestamp(r.expires_at),
                revoked: r.revoked_at.is_some(),
            })
            .collect())
    }

    /// The rollout an unexpired, unrevoked share link opens.
    pub async fn share_link(&self, hash: &[u8], now: Timestamp) -> Result<Option<Holder>> {
        let row = sqlx::query!(
            "SELECT id, rollout_id FROM share_links WHERE hash = $1 AND revoked_at IS NULL AND expires_at > $2",
            hash,
            from_timestamp(now)
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| Holder::ShareLink { id: r.id, rollout_id: r.rollout_id }))
    }

    pub async fn revoke_share_link(&self, id: i64, actor: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query!(
            "UPDATE share_links SET revoked_at = coalesce(revoked_at, $2), revoked_by = coalesce(revoked_by, $3) WHERE id = $1
             RETURNING rollout_id, label",
            id,
            from_timestamp(now),
            actor
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("share link"))?;
        let text = format!("Revoked share link \"{}\"", row.label);
        insert_audit(
            &mut tx,
            Some(row.rollout_id),
            actor,
            "share_link_revoked",
            &text,
            None,
            None,
            serde_json::json!({ "share_link_id": id }),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
