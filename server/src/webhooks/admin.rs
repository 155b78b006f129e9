//! The webhook admin service: validation here, storage in the store, secrets sealed at rest.

use super::payload::Event;
use crate::clock::Clock;
use crate::egress::Egress;
use crate::sealed::SecretKeys;
use crate::store::Store;
use app::error::AppError;
use app::model::{DeliveryView, Issued, WebhookLog, WebhookView};
use app::services::WebhookService;

/// The webhook admin service.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    clock: Clock,
    egress: Egress,
    keys: SecretKeys,
}

impl Webhooks {
    pub fn new(store: Store, clock: Clock, egress: Egress, keys: SecretKeys) -> Webhooks {
        Webhooks { store, clock, egress, keys }
    }
}

#[async_trait::async_trait]
impl WebhookService for Webhooks {
    async fn webhooks(&self, deliveries: i64) -> Result<Vec<WebhookLog>, AppError> {
        let mut logs = Vec::new();
        for webhook in self.store.webhooks().await? {
            let deliveries = if deliveries > 0 { self.store.deliveries(webhook.id, deliveries).await? } else { Vec::new() };
            logs.push(WebhookLog { webhook, deliveries });
        }
        Ok(logs)
    }

    async fn create_webhook(&self, url: &str, events: &[Event], description: &str, actor: &str) -> Result<Issued<WebhookView>, AppError> {
        let url = reqwest::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| AppError::invalid("url", format!("`{}` is not an http(s) URL", url.trim())))?;
        self.egress.check_url(&url).map_err(|why| AppError::invalid("url", why))?;
        let description = description.trim();
        if description.chars().count() > 200 {
            return Err(AppError::invalid("description", "at most 200 characters"));
        }
        let mut unique = Vec::new();
        for event in events {
            if !unique.contains(event) {
                unique.push(*event);
            }
        }
        let secret = format!("whsec_{}", crate::random::new_secret());
        let sealed = self.keys.seal(&secret);
        let item = self.store.create_webhook(url.as_str(), &sealed, &unique, description, actor, (self.clock)()).await?;
        Ok(Issued { item, secret })
    }

    async fn remove_webhook(&self, id: i64, actor: &str) -> Result<(), AppError> {
        Ok(self.store.disable_webhook(id, actor, (self.clock)()).await?)
    }

    async fn deliveries(&self, id: i64, limit: i64) -> Result<Vec<DeliveryView>, AppError> {
        Ok(self.store.deliveries(id, limit.clamp(1, 500)).await?)
    }
}

/// Seals every webhook's secret with the first key (`rampart secrets reseal`): each opened with
/// whichever listed key sealed it. Returns how many.
pub async fn reseal(store: &Store, keys: &SecretKeys) -> anyhow::Result<usize> {
    anyhow::ensure!(keys.is_configured(), "RAMPART_SECRET_KEYS is not set: nothing to seal with");
    let mut count = 0;
    for (id, stored) in store.webhook_secrets().await? {
        let secret = keys.open(&stored).map_err(|why| anyhow::anyhow!("webhook {id}: {why}"))?;
        store.set_webhook_secret(id, &keys.seal(&secret)).await?;
        count += 1;
    }
    Ok(count)
}
