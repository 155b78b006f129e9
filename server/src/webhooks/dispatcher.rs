//! The dispatcher: claims due deliveries from the outbox with a lease (`SKIP LOCKED`, so
//! replicas never send the same attempt twice), POSTs them signed to the address that was
//! checked, and records every attempt; a failure is retried with backoff until [`BACKOFF`]
//! runs out.

use super::payload::{Attempt, signature};
use crate::clock::Clock;
use crate::egress::Egress;
use crate::sealed::SecretKeys;
use crate::store::{DueDelivery, Store, StoreError};
use app::domain::units::{Span, Timestamp};
use std::time::Duration;

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
/// Deliveries claimed per round; they are sent at once, so a slow receiver holds back no other.
const CLAIM: i64 = 5;
/// How long claimed deliveries stay reserved for the process sending them: far longer than a
/// round can take when every receiver times out, so no other replica sends the same attempt.
const LEASE: Span = Span::from_secs(CLAIM * TIMEOUT.as_secs() as i64 * 2);

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
        // All at once: a receiver that takes its time (up to the timeout) delays no other.
        let attempts = futures_util::future::join_all(due.iter().map(|delivery| self.send(delivery, now))).await;
        let mut outcomes = Vec::with_capacity(due.len());
        for (delivery, attempt) in due.into_iter().zip(attempts) {
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
