//! `Auth` as the admin page's `AccountService`: people, API tokens and share links, each secret
//! handed out once.

use super::{Auth, MAX_NAME, check_password_rules, digest, hash_off_thread, valid_user_name};
use crate::random::new_secret;
use app::domain::access::{Principal, Role, Scope};
use app::domain::units::{Span, Timestamp};
use app::error::AppError;
use app::model::{Issued, ShareLinkView, TokenView, UserView};

#[async_trait::async_trait]
impl app::services::AccountService for Auth {
    async fn users(&self) -> Result<Vec<UserView>, AppError> {
        self.store.users().await.map_err(AppError::from)
    }

    /// Adds a user; without a password, one is generated and returned once.
    async fn create_user(&self, name: &str, role: Role, password: Option<&str>, actor: &str) -> Result<Issued<UserView>, AppError> {
        let name = name.trim();
        if !valid_user_name(name) {
            return Err(AppError::invalid(
                "name",
                "1 to 64 lowercase letters, digits, dots, dashes or underscores, starting with a letter or digit",
            ));
        }
        let secret = match password {
            Some(p) => {
                check_password_rules(p)?;
                p.to_string()
            }
            None => new_secret()[..24].to_string(),
        };
        let hash = hash_off_thread(secret.clone()).await?;
        let user = self.store.create_user(name, role, &hash, actor, self.now()).await?;
        let user = user.ok_or_else(|| AppError::invalid("name", format!("a user named {name} already exists")))?;
        // A chosen password is not echoed back.
        Ok(Issued { item: user, secret: if password.is_some() { String::new() } else { secret } })
    }

    async fn unlock_user(&self, id: i64, actor: &str) -> Result<(), AppError> {
        Ok(self.store.clear_login_failures(id, actor).await?)
    }

    async fn update_user(&self, id: i64, role: Option<Role>, disabled: Option<bool>, by: &Principal) -> Result<UserView, AppError> {
        if let Principal::User { id: me, .. } = by
            && *me == id
            && (disabled == Some(true) || role.is_some_and(|r| r != Role::Admin))
        {
            return Err(AppError::invalid("role", "you cannot demote or disable yourself; ask another admin"));
        }
        self.store.update_user(id, role, disabled, &by.actor(), self.now()).await.map_err(AppError::from)
    }

    async fn tokens(&self) -> Result<Vec<TokenView>, AppError> {
        self.store.tokens().await.map_err(AppError::from)
    }

    async fn create_token(&self, name: &str, scopes: &[Scope], actor: &str) -> Result<Issued<TokenView>, AppError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(AppError::invalid("name", format!("must be 1 to {MAX_NAME} characters")));
        }
        if scopes.is_empty() {
            return Err(AppError::invalid("scopes", "name at least one of ingest, evaluate, read, drive"));
        }
        let secret = format!("rmp_{}", new_secret());
        let token = self.store.create_token(name, &digest(&secret), scopes, actor, self.now()).await?;
        Ok(Issued { item: token, secret })
    }

    /// Revokes a token; this process stops accepting it at once, others within the cache TTL.
    async fn revoke_token(&self, id: i64, actor: &str) -> Result<(), AppError> {
        self.store.revoke_token(id, actor, self.now()).await?;
        self.tokens.lock().expect("token cache").clear();
        Ok(())
    }

    async fn share_links(&self) -> Result<Vec<ShareLinkView>, AppError> {
        self.store.share_links().await.map_err(AppError::from)
    }

    async fn create_share_link(
        &self,
        rollout_id: i64,
        label: &str,
        valid_for_hours: i64,
        actor: &str,
    ) -> Result<Issued<ShareLinkView>, AppError> {
        let valid_for = Span::from_secs(valid_for_hours.saturating_mul(3600));
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 200 {
            return Err(AppError::invalid("label", "must be 1 to 200 characters (who the link is for)"));
        }
        if valid_for.millis() <= 0 || valid_for.secs() > 366 * 86_400 {
            return Err(AppError::invalid("valid_for_hours", "must be between 1 hour and a year"));
        }
        self.store.rollout(rollout_id).await?;
        let secret = new_secret();
        let now = self.now();
        let expires = Timestamp(now.millis() + valid_for.millis());
        let link = self.store.create_share_link(rollout_id, label, &digest(&secret), expires, actor, now).await?;
        Ok(Issued { item: link, secret })
    }

    async fn revoke_share_link(&self, id: i64, actor: &str) -> Result<(), AppError> {
        self.store.revoke_share_link(id, actor, self.now()).await.map_err(AppError::from)
    }
}
