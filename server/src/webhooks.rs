//! Outgoing webhooks: what is announced, how it is signed, and the dispatcher that delivers it.
//!
//! Deliveries are an outbox: the store writes one row per subscribed webhook in the same
//! transaction as the change it announces, so nothing is announced that did not commit and
//! nothing that committed is lost. The dispatcher claims a few due rows at a time with a lease
//! (`SKIP LOCKED`, so replicas never send the same attempt twice), POSTs them signed, and
//! records every attempt;
//! a failure is retried with backoff until [`BACKOFF`] runs out.

use crate::egress::Egress;
use crate::sealed::SecretKeys;
use crate::service::Clock;
use crate::store::{DueDelivery, Store, StoreError};
use app::domain::plan::Plan;
use app::domain::rollout::{Rollout, served_flag};
use app::domain::units::{Span, Timestamp};
use app::error::AppError;
use app::model::{DeliveryView, Issued, WebhookLog, WebhookView};
use app::services::WebhookService;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub use app::domain::webhook::Event;

/// Waits before each retry: the n-th failed attempt is retried after `BACKOFF[n - 1]`; after the
/// last one the delivery is marked failed (about 3.5 hours of trying in all).
pub const BACKOFF: [Span; 7] = [
    Span::from_secs(10),
    Span::from_secs(30),
    Span::from_secs(120),
    Span::from_secs(600),
    Span::from_secs(1800),
    Span::from_secs(3600),
    Span::from_secs(7200),
];

const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries claimed per round; they are sent one after the other.
const CLAIM: i64 = 5;
/// How long claimed deliveries stay reserved for the process sending them: longer than a round
/// can take when every receiver times out, so no other replica sends the same attempt.
const LEASE: Span = Span::from_secs(CLAIM * TIMEOUT.as_secs() as i64 * 2);

/// The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
/// Receivers recompute it with the shared secret and refuse old timestamps (replays).
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A change to announce, as the store has it at commit.
pub struct Announcement<'a> {
    pub event: Event,
    pub rollout_id: i64,
    pub plan: &'a Plan,
    pub state: &'a Rollout,
    pub summary: &'a str,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub evidence: &'a serde_json::Value,
    pub at: Timestamp,
}

/// The JSON body a webhook receives (documented in docs/api.md). `text` is one line a chat
/// relay can post as is; the rest is for machines.
pub fn payload(a: &Announcement<'_>) -> serde_json::Value {
    let stage = a.plan.stage(a.state.stage);
    let flag = served_flag(a.plan, a.state);
    let mut text = format!("{}: {}", a.plan.name, a.summary);
    if let Some(reason) = a.reason {
        text.push_str(&format!(" (reason: {reason})"));
    }
    serde_json::json!({
        "event": a.event.as_str(),
        "text": text,
        "at": app::format::iso(a.at),
        "rollout": { "id": a.rollout_id, "name": a.plan.name, "flag": a.plan.flag.key, "path": format!("/rollouts/{}", a.rollout_id) },
        "state": {
            "stage": a.state.stage.0,
            "stage_name": stage.map(|s| s.name.as_str()),
            "status": a.state.status.as_str(),
            "version": a.state.version.0,
            "flag": flag,
            "request": a.state.request,
        },
        "summary": a.summary,
        "actor": a.actor,
        "reason": a.reason,
        "evidence": a.evidence,
    })
}

/// The webhook admin service: validation here, storage in the store.
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
        let secret = format!("whsec_{}", crate::auth::new_secret());
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

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered { status: u16 },
    Failed { status: Option<u16>, error: String },
}

/// Sends due deliveries; `tick(now)` does one round and tests call it directly.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    clock: Clock,
    egress: Egress,
    keys: SecretKeys,
}

impl Dispatcher {
    pub fn new(store: Store, clock: Clock, egress: Egress, keys: SecretKeys) -> Dispatcher {
        Dispatcher { store, clock, egress, keys }
    }

    /// A client that connects to `address` whatever the URL's host name resolves to by then
    /// (the address was checked; TLS still verifies the certificate for the host name), follows
    /// no redirect and waits at most [`TIMEOUT`].
    fn client_to(&self, url: &reqwest::Url, address: std::net::SocketAddr) -> reqwest::Result<reqwest::Client> {
        let mut builder = self
            .egress
            .roots
            .trusted_by(reqwest::Client::builder())
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // Never through a proxy from the environment: it would resolve the name again.
            .no_proxy()
            .user_agent(concat!("Rampart-Webhooks/", env!("CARGO_PKG_VERSION")));
        if let Some(host) = url.host_str() {
            builder = builder.resolve(host, address);
        }
        builder.build()
    }

    /// Runs until the pool closes, a round every second.
    pub fn spawn(self) {
        tokio::spawn(async move {
            let pool = self.store.pool().clone();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = pool.close_event() => return,
                }
                if let Err(error) = self.tick((self.clock)()).await {
                    tracing::warn!(%error, "webhook round failed; retrying");
                }
            }
        });
    }

    /// Claims what is due at `now`, sends it, and records each attempt. Returns what happened
    /// to each delivery claimed.
    pub async fn tick(&self, now: Timestamp) -> Result<Vec<(i64, Attempt)>, StoreError> {
        let due = self.store.claim_deliveries(now, now.plus(LEASE), CLAIM).await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for delivery in due {
            let attempt = self.send(&delivery, now).await;
            let retry_at = match &attempt {
                Attempt::Delivered { .. } => None,
                Attempt::Failed { .. } => BACKOFF.get(delivery.attempts as usize).map(|wait| now.plus(*wait)),
            };
            match &attempt {
                // Never the URL: a chat relay's webhook URL is itself a secret.
                Attempt::Delivered { status } => tracing::info!(delivery = delivery.id, status, "webhook delivered"),
                Attempt::Failed { status, error } => {
                    tracing::warn!(delivery = delivery.id, ?status, %error, retry = retry_at.is_some(), "webhook failed")
                }
            }
            self.store.record_attempt(delivery.id, &attempt, now, retry_at).await?;
            outcomes.push((delivery.id, attempt));
        }
        Ok(outcomes)
    }

    async fn send(&self, delivery: &DueDelivery, now: Timestamp) -> Attempt {
        let refused = |error: String| Attempt::Failed { status: None, error };
        let Ok(url) = reqwest::Url::parse(&delivery.url) else { return refused("the stored URL does not parse".into()) };
        // Resolved once and checked; the request goes to that address and no other.
        let address = match self.egress.resolve(&url).await {
            Ok(address) => address,
            Err(why) => return refused(why),
        };
        let client = match self.client_to(&url, address) {
            Ok(client) => client,
            Err(e) => return refused(describe(&e)),
        };
        let secret = match self.keys.open(&delivery.secret) {
            Ok(secret) => secret,
            Err(why) => return refused(why),
        };
        let body = serde_json::to_vec(&delivery.payload).unwrap_or_default();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("rampart-event", &delivery.event)
            .header("rampart-delivery", delivery.id.to_string())
            .header("rampart-signature", signature(&secret, now.millis() / 1000, &body))
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => Attempt::Delivered { status: r.status().as_u16() },
            Ok(r) => Attempt::Failed { status: Some(r.status().as_u16()), error: format!("the receiver answered {}", r.status()) },
            Err(e) => Attempt::Failed { status: None, error: describe(&e) },
        }
    }
}

/// A transport error in words, without the URL (which may carry a secret path).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if error.is_connect() {
        // TLS failures are connect errors too: the innermost cause says which.
        let mut cause: &dyn std::error::Error = error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        let cause = cause.to_string();
        if cause.contains("certificate") || cause.contains("Certificate") {
            format!("the receiver's TLS certificate was refused ({cause}); an internal CA can be trusted with RAMPART_WEBHOOK_CA")
        } else {
            "could not connect".to_string()
        }
    } else {
        let mut text = error.to_string();
        if let Some(url) = error.url() {
            text = text.replace(url.as_str(), "the webhook URL");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_and_body() {
        // Checked against `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret`.
        assert_eq!(
            signature("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
