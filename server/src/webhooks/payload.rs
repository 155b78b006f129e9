//! What a webhook receives: the events, the JSON body announcing a change, its signature, and
//! what became of one attempt to deliver it. A leaf: the store writes these in the transaction
//! of the change they announce, the dispatcher sends them.

use app::domain::plan::Plan;
use app::domain::rollout::{Rollout, served_flag};
use app::domain::units::Timestamp;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use app::domain::webhook::Event;

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

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered { status: u16 },
    Failed { status: Option<u16>, error: String },
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
