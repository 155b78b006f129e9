//! Users, sessions, API tokens, share links and failed sign-ins. Every secret arrives here
//! already hashed; nothing in this module ever sees a raw password, token or session id.

use super::{Result, Store, StoreError, from_timestamp, insert_audit, to_timestamp};
use app::domain::access::{Role, Scope};
use app::domain::units::Timestamp;
use app::model::UserView;
use sqlx::postgres::PgConnection;

mod tokens;

/// A user as sign-in needs them.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

/// What a valid session, token or share link resolves to.
#[derive(Clone, Debug)]
pub enum Holder {
    User { id: i64, name: String, role: Role },
    Token { id: i64, name: String, scopes: Vec<Scope> },
    ShareLink { id: i64, rollout_id: i64 },
}

fn role_from(text: &str) -> Result<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("role `{text}`")))
}

fn scopes_from(texts: &[String]) -> Result<Vec<Scope>> {
    texts.iter().map(|t| Scope::parse(t).ok_or_else(|| StoreError::Corrupt(format!("scope `{t}`")))).collect()
}

fn scope_texts(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_string()).collect()
}

impl Store {
    pub async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM users"#).fetch_one(self.pool()).await?)
    }

    /// Adds a user; `None` when the name is taken.
    pub async fn create_user(&self, name: &str, role: Role, password_hash: &str, actor: &str, now: Timestamp) -> Result<Option<UserView>> {
        let mut tx = self.pool().begin().await?;
        let user = insert_user(&mut tx, name, role, password_hash, actor, now).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Adds a user and a one-time set-password link for them (its secret's hash only) in one
    /// transaction: a crash in between cannot leave an account nobody can sign in to.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_user_with_setup_link(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
        now: Timestamp,
        link_hash: &[u8],
        expires: Timestamp,
    ) -> Result<Option<UserView>> {
        let mut tx = self.pool().begin().await?;
        let Some(user) = insert_user(&mut tx, name, role, password_hash, actor, now).await? else { return Ok(None) };
        insert_setup_link(&mut tx, user.id, link_hash, now, expires).await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    pub async fn users(&self) -> Result<Vec<UserView>> {
        let rows = sqlx::query!("SELECT id, name, role, created_at, created_by, disabled_at FROM users ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(UserView {
                    id: r.id,
                    name: r.name,
                    role: role_from(&r.role)?,
                    created_at: to_timestamp(r.created_at),
                    created_by: r.created_by,
                    disabled: r.disabled_at.is_some(),
                })
            })
            .collect()
    }

    /// Changes a user's role and/or disables them; a disabled user's sessions end at once.
    pub async fn update_user(&self, id: i64, role: Option<Role>, disabled: Option<bool>, actor: &str, now: Timestamp) -> Result<UserView> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query!(
            "UPDATE users SET role = coalesce($2, role),
                    disabled_at = CASE WHEN $3::bool IS NULL THEN disabled_at WHEN $3 THEN coalesce(disabled_at, $4) ELSE NULL END
             WHERE id = $1 RETURNING name, role, created_at, created_by, disabled_at",
            id,
            role.map(Role::as_str),
            disabled,
            from_timestamp(now)
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
        if row.disabled_at.is_some() {
            sqlx::query!("DELETE FROM sessions WHERE user_id = $1", id).execute(&mut *tx).await?;
        }
        let mut changes = Vec::new();
        if let Some(role) = role {
            changes.push(format!("role {role}"));
        }
        match disabled {
            Some(true) => changes.push("disabled".into()),
            Some(false) => changes.push("enabled".into()),
            None => {}
        }
        let text = format!("Changed user {}: {}", row.name, changes.join(", "));
        insert_audit(&mut tx, None, actor, "user_changed", &text, None, None, serde_json::json!({}), None).await?;
        tx.commit().await?;
        Ok(UserView {
            id,
            name: row.name,
            role: role_from(&row.role)?,
            created_at: to_timestamp(row.created_at),
            created_by: row.created_by,
            disabled: row.disabled_at.is_some(),
        })
    }

    /// The credentials of an enabled user.
    pub async fn credentials(&self, name: &str) -> Result<Option<Credentials>> {
        let row = sqlx::query!("SELECT id, name, role, password_hash FROM users WHERE name = $1 AND disabled_at IS NULL", name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok(Credentials { id: r.id, name: r.name, role: role_from(&r.role)?, password_hash: r.password_hash })).transpose()
    }

    /// Sets a user's password hash and ends all their sessions.
    pub async fn set_password(&self, user_id: i64, password_hash: &str, actor: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let name = sqlx::query_scalar!("UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING name", user_id, password_hash)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        sqlx::query!("DELETE FROM sessions WHERE user_id = $1", user_id).execute(&mut *tx).await?;
        insert_audit(
            &mut tx,
            None,
            actor,
            "password_set",
            &format!("Set a new password for {name}"),
            None,
            None,
            serde_json::json!({}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a one-time set-password link for `user_id` (its secret's hash only).
    pub async fn create_setup_link(&self, user_id: i64, hash: &[u8], now: Timestamp, expires: Timestamp) -> Result<()> {
        let mut conn = self.pool().acquire().await?;
        insert_setup_link(&mut conn, user_id, hash, now, expires).await
    }

    /// The name of the person a set-password link is for, while it is unused and unexpired.
    pub async fn setup_link_user(&self, hash: &[u8], now: Timestamp) -> Result<Option<String>> {
        Ok(sqlx::query_scalar!(
            "SELECT u.name FROM setup_links l JOIN users u ON u.id = l.user_id
             WHERE l.hash = $1 AND l.used_at IS NULL AND l.expires_at > $2 AND u.disabled_at IS NULL",
            hash,
            from_timestamp(now)
        )
        .fetch_optional(self.pool())
        .await?)
    }

    /// Uses a set-password link: once, before it expires, in one transaction with the new
    /// password (audited). Returns the person, to sign in; `None` if the link is no good.
    pub async fn use_setup_link(&self, hash: &[u8], password_hash: &str, now: Timestamp) -> Result<Option<Credentials>> {
        let mut tx = self.pool().begin().await?;
        let Some(user_id) = sqlx::query_scalar!(
            "UPDATE setup_links SET used_at = $2 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
            hash,
            from_timestamp(now)
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let row = sqlx::query!(
            "UPDATE users SET password_hash = $2 WHERE id = $1 AND disabled_at IS NULL RETURNING id, name, role",
            user_id,
            password_hash
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let text = format!("{} chose a password through a one-time set-up link", row.name);
        insert_audit(&mut tx, None, &row.name, "password_set", &text, None, None, serde_json::json!({}), None).await?;
        tx.commit().await?;
        Ok(Some(Credentials { id: row.id, name: row.name, role: role_from(&row.role)?, password_hash: password_hash.to_string() }))
    }

    /// Starts a session and records the sign-in.
    pub async fn create_session(
        &self,
        id_hash: &[u8],
        user: &Credentials,
        address: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query!(
            "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, address) VALUES ($1, $2, $3, $4, $5)",
            id_hash,
            user.id,
            from_timestamp(now),
            from_timestamp(expires),
            address
        )
        .execute(&mut *tx)
        .await?;
        // A successful sign-in clears the account's failures from this address (its owner's
        // typos); a guesser's elsewhere stand, and the address keeps its own for other accounts.
        sqlx::query!("DELETE FROM login_failures WHERE name = $1 AND address = $2", user.name, address).execute(&mut *tx).await?;
        let text = format!("{} signed in from {address}", user.name);
        insert_audit(&mut tx, None, &user.name, "login", &text, None, None, serde_json::json!({ "address": address }), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The signed-in user of an unexpired session.
    pub async fn session_user(&self, id_hash: &[u8], now: Timestamp) -> Result<Option<Holder>> {
        let row = sqlx::query!(
            "SELECT u.id, u.name, u.role FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
            id_hash,
            from_timestamp(now)
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok(Holder::User { id: r.id, name: r.name, role: role_from(&r.role)? })).transpose()
    }

    /// Ends one session, or with `everywhere` every session of its user. Returns the user's name.
    pub async fn end_session(&self, id_hash: &[u8], everywhere: bool) -> Result<Option<String>> {
        let mut tx = self.pool().begin().await?;
        let row =
            sqlx::query!("DELETE FROM sessions s USING users u WHERE s.id_hash = $1 AND u.id = s.user_id RETURNING u.id, u.name", id_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else { return Ok(None) };
        if everywhere {
            sqlx::query!("DELETE FROM sessions WHERE user_id = $1", row.id).execute(&mut *tx).await?;
        }
        let text = if everywhere { format!("{} signed out everywhere", row.name) } else { format!("{} signed out", row.name) };
        insert_audit(&mut tx, None, &row.name, "logout", &text, None, None, serde_json::json!({}), None).await?;
        tx.commit().await?;
        Ok(Some(row.name))
    }

    /// Claims a sign-in attempt of `name` from `address`: under a lock on each (in a fixed
    /// order, so two attempts never wait for each other in a circle), tallies their failures
    /// since `since` and asks `refuse` whether to turn the attempt away (the time it may come
    /// back); otherwise records it as a failure until it succeeds (a success clears the
    /// account's failures). Concurrent attempts therefore see each other: no more than the
    /// rules allow are ever let through to the password check.
    pub async fn claim_login_attempt(
        &self,
        name: &str,
        address: &str,
        now: Timestamp,
        since: Timestamp,
        refuse: impl FnOnce(&LoginTally) -> Option<Timestamp>,
    ) -> Result<std::result::Result<i64, Timestamp>> {
        let mut tx = self.pool().begin().await?;
        sqlx::query!("SELECT pg_advisory_xact_lock(7003, hashtext($1))", name).execute(&mut *tx).await?;
        sqlx::query!("SELECT pg_advisory_xact_lock(7004, hashtext($1))", address).execute(&mut *tx).await?;
        let row = sqlx::query!(
            r#"SELECT count(*) FILTER (WHERE name = $1 AND address = $2) AS "pair!", max(at) FILTER (WHERE name = $1 AND address = $2) AS pair_last,
                      count(*) FILTER (WHERE name = $1) AS "by_name!", min(at) FILTER (WHERE name = $1) AS by_name_oldest,
                      count(*) FILTER (WHERE address = $2) AS "by_address!", min(at) FILTER (WHERE address = $2) AS by_address_oldest
               FROM login_failures WHERE (name = $1 OR address = $2) AND at >= $3"#,
            name,
            address,
            from_timestamp(since)
        )
        .fetch_one(&mut *tx)
        .await?;
        let tally = LoginTally {
            pair: row.pair,
            pair_last: row.pair_last.map(to_timestamp),
            by_name: row.by_name,
            by_name_oldest: row.by_name_oldest.map(to_timestamp),
            by_address: row.by_address,
            by_address_oldest: row.by_address_oldest.map(to_timestamp),
        };
        if let Some(free_at) = refuse(&tally) {
            return Ok(Err(free_at));
        }
        sqlx::query!("DELETE FROM login_failures WHERE at < $1", from_timestamp(since)).execute(&mut *tx).await?;
        let claim = sqlx::query_scalar!(
            "INSERT INTO login_failures (name, address, at) VALUES ($1, $2, $3) RETURNING id",
            name,
            address,
            from_timestamp(now)
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(claim))
    }

    /// Remembers a browser that signed in to `name` (by its device cookie's digest) until `expires`.
    pub async fn trust_device(&self, hash: &[u8], name: &str, now: Timestamp, expires: Timestamp) -> Result<()> {
        sqlx::query!(
            "INSERT INTO trusted_devices (hash, name, created_at, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING",
            hash,
            name,
            from_timestamp(now),
            from_timestamp(expires)
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether this device cookie's digest belongs to a browser that signed in to `name` before.
    pub async fn is_trusted_device(&self, hash: &[u8], name: &str, now: Timestamp) -> Result<bool> {
        let found = sqlx::query_scalar!(
            "SELECT 1 AS one FROM trusted_devices WHERE hash = $1 AND name = $2 AND expires_at > $3",
            hash,
            name,
            from_timestamp(now)
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// Forgets an account's failed sign-ins (an admin's unlock), and says so in the audit trail.
    pub async fn clear_login_failures(&self, user_id: i64, actor: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let name = sqlx::query_scalar!("SELECT name FROM users WHERE id = $1", user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        let cleared = sqlx::query!("DELETE FROM login_failures WHERE name = $1", name).execute(&mut *tx).await?.rows_affected();
        let text = format!("Cleared {cleared} failed sign-in(s) of {name}: they may sign in again from anywhere at once");
        insert_audit(&mut tx, None, actor, "unlock", &text, None, None, serde_json::json!({ "user": name, "cleared": cleared }), None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes back a claimed attempt that was never judged (the server was too busy to hash it).
    pub async fn release_login_attempt(&self, claim: i64) -> Result<()> {
        sqlx::query!("DELETE FROM login_failures WHERE id = $1", claim).execute(self.pool()).await?;
        Ok(())
    }

    /// Writes a failed sign-in to the audit trail (its claim, [`Store::claim_login_attempt`],
    /// already counts it).
    pub async fn record_login_failure(&self, name: &str, address: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let text = format!("Failed sign-in as {name} from {address}");
        insert_audit(&mut tx, None, name, "login_failed", &text, None, None, serde_json::json!({ "address": address }), None).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// An account's and an address's recent failed sign-ins, as the throttle weighs them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginTally {
    /// Failures of this account from this address, and the latest.
    pub pair: i64,
    pub pair_last: Option<Timestamp>,
    /// Failures of this account from anywhere, and the oldest.
    pub by_name: i64,
    pub by_name_oldest: Option<Timestamp>,
    /// Failures from this address for any account, and the oldest.
    pub by_address: i64,
    pub by_address_oldest: Option<Timestamp>,
}

/// Adds a user, with its audit entry; `None` when the name is taken.
async fn insert_user(
    conn: &mut PgConnection,
    name: &str,
    role: Role,
    password_hash: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Option<UserView>> {
    let row = sqlx::query!(
        "INSERT INTO users (name, role, password_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO NOTHING RETURNING id",
        name,
        role.as_str(),
        password_hash,
        from_timestamp(now),
        actor
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    insert_audit(conn, None, actor, "user_created", &format!("Added user {name} as {role}"), None, None, serde_json::json!({}), None)
        .await?;
    Ok(Some(UserView { id: row.id, name: name.into(), role, created_at: now, created_by: actor.into(), disabled: false }))
}

async fn insert_setup_link(conn: &mut PgConnection, user_id: i64, hash: &[u8], now: Timestamp, expires: Timestamp) -> Result<()> {
    sqlx::query!(
        "INSERT INTO setup_links (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        hash,
        user_id,
        from_timestamp(now),
        from_timestamp(expires)
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
