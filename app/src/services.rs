//! The seam between the UI and the server: server functions call these traits, the server
//! implements them over Postgres and hands them in through Leptos context. `app` therefore never
//! links sqlx, and the REST API calls the very same services.

use crate::domain::access::{Principal, Role, Scope};
use crate::domain::rollout::{Command, Rollout};
use crate::domain::webhook::Event;
use crate::error::AppError;
use crate::model::{
    AuditEntry, BaselinePreview, ChartSeries, ChecklistItem, ControlRoom, DeliveryView, Issued, ShareLinkView, Tick, TokenView, UserView,
    WebhookLog, WebhookView,
};
use std::sync::Arc;

/// Reading and driving rollouts.
#[async_trait::async_trait]
pub trait RolloutService: Send + Sync + 'static {
    /// The control room of `rollout_id`, or of the newest rollout when `None`.
    async fn control_room(&self, rollout_id: Option<i64>) -> Result<ControlRoom, AppError>;

    /// Ticks or unticks one checklist item on behalf of `actor`.
    async fn set_checklist_item(&self, rollout_id: i64, item_id: i64, tick: Tick, actor: &str) -> Result<ChecklistItem, AppError>;

    /// Acknowledges an open alert with a written note, unblocking advancing.
    async fn acknowledge_alert(&self, rollout_id: i64, alert_id: i64, note: &str, actor: &str) -> Result<(), AppError>;

    /// Every rollout's id, newest first.
    async fn rollout_ids(&self) -> Result<Vec<i64>, AppError>;

    /// Every incident of a rollout — automatic and manual rollbacks, alerts, pauses — newest
    /// first: what the status page lists.
    async fn incidents(&self, rollout_id: i64) -> Result<Vec<AuditEntry>, AppError>;

    /// Per-step numbers of both arms over the last `hours` (0: since the rollout started), with
    /// stage changes and rollbacks.
    async fn chart_series(&self, rollout_id: i64, hours: u32) -> Result<ChartSeries, AppError>;

    /// The control arm's numbers over the last `hours` whole minutes: what capturing a baseline
    /// there would freeze.
    async fn preview_baseline(&self, rollout_id: i64, hours: u32) -> Result<BaselinePreview, AppError>;

    /// Applies `command`, given by `by`, to the rollout as it was at `expected_version`.
    async fn command(&self, rollout_id: i64, expected_version: u64, command: Command, by: &Principal) -> Result<Rollout, AppError>;
}

/// Users, API tokens and share links (the admin pages). `actor` is who acts, for the audit trail.
#[async_trait::async_trait]
pub trait AccountService: Send + Sync + 'static {
    async fn users(&self) -> Result<Vec<UserView>, AppError>;
    /// Without a password, one is generated and returned once.
    async fn create_user(&self, name: &str, role: Role, password: Option<&str>, actor: &str) -> Result<Issued<UserView>, AppError>;
    /// Changes a user's role and/or disables them. Nobody demotes or disables themselves, so
    /// there is always an admin left.
    async fn update_user(&self, id: i64, role: Option<Role>, disabled: Option<bool>, by: &Principal) -> Result<UserView, AppError>;
    /// Clears a user's failed sign-ins, so that they may sign in again at once from anywhere.
    async fn unlock_user(&self, id: i64, actor: &str) -> Result<(), AppError>;
    async fn tokens(&self) -> Result<Vec<TokenView>, AppError>;
    async fn create_token(&self, name: &str, scopes: &[Scope], actor: &str) -> Result<Issued<TokenView>, AppError>;
    async fn revoke_token(&self, id: i64, actor: &str) -> Result<(), AppError>;
    async fn share_links(&self) -> Result<Vec<ShareLinkView>, AppError>;
    async fn create_share_link(
        &self,
        rollout_id: i64,
        label: &str,
        valid_for_hours: i64,
        actor: &str,
    ) -> Result<Issued<ShareLinkView>, AppError>;
    async fn revoke_share_link(&self, id: i64, actor: &str) -> Result<(), AppError>;
}

/// Outgoing webhooks and their delivery log (the admin page and the REST API).
#[async_trait::async_trait]
pub trait WebhookService: Send + Sync + 'static {
    /// Every webhook, active ones first, each with its newest `deliveries` deliveries.
    async fn webhooks(&self, deliveries: i64) -> Result<Vec<WebhookLog>, AppError>;
    /// Adds a webhook for `events` (none: every event); its signing secret is returned once.
    async fn create_webhook(&self, url: &str, events: &[Event], description: &str, actor: &str) -> Result<Issued<WebhookView>, AppError>;
    /// Stops a webhook; what it had not yet received is dropped (and kept in the log).
    async fn remove_webhook(&self, id: i64, actor: &str) -> Result<(), AppError>;
    /// A webhook's newest `limit` deliveries, newest first.
    async fn deliveries(&self, id: i64, limit: i64) -> Result<Vec<DeliveryView>, AppError>;
}

/// The services as the server provides them in context.
#[derive(Clone)]
pub struct Services {
    pub rollouts: Arc<dyn RolloutService>,
    pub accounts: Arc<dyn AccountService>,
    pub webhooks: Arc<dyn WebhookService>,
}
