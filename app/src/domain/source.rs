//! Where a rollout's evidence comes from: Rampart's own event store (the default), or a
//! Prometheus server the team already runs (`[metrics_source]` in the plan file).
//!
//! With Prometheus, Rampart reads the raw samples of the per-arm counters and histogram buckets
//! over the span it judges and computes the increases itself (a drop in a counter is a restart:
//! counting starts again from zero, as Prometheus's `increase()` does), so that a decision can
//! show the exact query, its time and the counts it came to. The increases land in the minute
//! of the later sample, and everything downstream — gates, guard, charts — reads the same
//! per-minute rows as from the event store. What the source cannot vouch for (no series, a
//! series gone stale, a scrape gap inside the span, the server down) is a [`Problem`]: the
//! verdicts built on it are inconclusive with that reason, never a pass or a rollback.

use super::units::Span;
use serde::{Deserialize, Serialize};
use std::fmt;

mod problem;
mod query;
mod selector;
mod tally;

pub use problem::Problem;
pub use query::{Arm, Query, Reads};
use selector::is_label_name;
pub use selector::{Matcher, Selector};
pub use tally::{Evidence, Pulled, PulledCell, Series, Tally, evidence};

/// The only environment variables a plan may name for Prometheus credentials start so.
pub const CREDENTIAL_PREFIX: &str = "RAMPART_PROMETHEUS_";

/// `[metrics_source]`: a Prometheus server and the series that hold each arm's uploads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// The server's base URL (`http://prometheus:9090`).
    pub prometheus: String,
    /// A counter of finished uploads, labelled by outcome and by arm: a series selector
    /// (`uploads_total{job="upload"}`); Rampart adds the arm's and reads the outcome's label.
    pub uploads: String,
    /// A histogram of upload latency (its base name and matchers; Rampart reads `_bucket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    #[serde(default)]
    pub latency_unit: LatencyUnit,
    /// A histogram of the memory an upload used (its base name and matchers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default)]
    pub memory_unit: MemoryUnit,
    /// A counter of critical errors, labelled by arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<String>,
    /// The label that names the arm, and its values. The defaults (`arm`, `treatment`,
    /// `control`) are Rampart's own variant names, as flag evaluation returns them; the
    /// OpenTelemetry convention is `arm_label = "feature_flag_variant"`.
    #[serde(default = "default_arm_label")]
    pub arm_label: String,
    #[serde(default = "default_treatment")]
    pub treatment: String,
    #[serde(default = "default_control")]
    pub control: String,
    /// The label that names an upload's outcome, and its values.
    #[serde(default = "default_outcome_label")]
    pub outcome_label: String,
    #[serde(default)]
    pub outcomes: Outcomes,
    /// The labels that name an upload's end-to-end matrix cell on the uploads counter (and on
    /// the histograms, for a cell's latency): without them the matrix and the impact by
    /// provider and file type cannot be read from this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_labels: Option<MatrixLabels>,
    /// The environment variable (on Rampart's server) holding a bearer token; never the token
    /// itself in the plan file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Basic authentication: the user, and the environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_env: Option<String>,
    /// A PEM file of the certificate authority that signed an https server's certificate, when
    /// it is not one the system trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Samples further apart than this inside the judged span are a scrape gap.
    #[serde(default = "default_max_gap")]
    pub max_gap: Span,
    /// The newest sample older than this is a stale series.
    #[serde(default = "default_max_staleness")]
    pub max_staleness: Span,
    /// The source unusable for longer than this raises an alert.
    #[serde(default = "default_alert_after")]
    pub alert_after: Span,
}

/// A stage's own source, over the plan's: `metrics_source = "events"` (the event store, though
/// the plan reads Prometheus) or a `[stages.metrics_source]` table of its own.
#[derive(Clone, Debug, PartialEq)]
pub enum StageSource {
    Events,
    Prometheus(Box<PrometheusSource>),
}

impl Serialize for StageSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StageSource::Events => serializer.serialize_str("events"),
            StageSource::Prometheus(source) => source.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for StageSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<StageSource, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StageSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""events" or a table naming a Prometheus server"#)
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StageSource, E> {
                match text {
                    "events" => Ok(StageSource::Events),
                    other => {
                        Err(E::custom(format!(r#"`{other}`: a stage's metric source is "events" or a table naming a Prometheus server"#)))
                    }
                }
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<StageSource, M::Error> {
                let source = PrometheusSource::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(StageSource::Prometheus(Box::new(source)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The outcome label's value for each outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcomes {
    pub success: String,
    pub error: String,
    pub timeout: String,
}

impl Default for Outcomes {
    fn default() -> Outcomes {
        Outcomes { success: "success".into(), error: "error".into(), timeout: "timeout".into() }
    }
}

/// The labels naming an upload's matrix cell: its file type, its size class (a number of
/// megabytes, `10` or `10MB`, classed by the plan's `[matrix]` sizes as an event's size is) and
/// its provider. Each defaults to its own name, so `matrix_labels = {}` reads
/// `file_type`, `size_mb` and `provider`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixLabels {
    pub file_type: String,
    pub size_mb: String,
    pub provider: String,
}

impl Default for MatrixLabels {
    fn default() -> MatrixLabels {
        MatrixLabels { file_type: "file_type".into(), size_mb: "size_mb".into(), provider: "provider".into() }
    }
}

impl MatrixLabels {
    fn named(&self) -> [(&'static str, &String); 3] {
        [("file_type", &self.file_type), ("size_mb", &self.size_mb), ("provider", &self.provider)]
    }
}

/// The unit of the latency histogram's bounds (Prometheus's convention is seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyUnit {
    #[default]
    Seconds,
    Milliseconds,
}

impl LatencyUnit {
    fn to_ms(self) -> f64 {
        match self {
            LatencyUnit::Seconds => 1000.0,
            LatencyUnit::Milliseconds => 1.0,
        }
    }
}

/// The unit of the memory histogram's bounds (Prometheus's convention is bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryUnit {
    #[default]
    Bytes,
    Megabytes,
}

impl MemoryUnit {
    fn to_mb(self) -> f64 {
        match self {
            MemoryUnit::Bytes => 1.0 / 1_048_576.0,
            MemoryUnit::Megabytes => 1.0,
        }
    }
}

fn default_arm_label() -> String {
    "arm".into()
}
fn default_treatment() -> String {
    "treatment".into()
}
fn default_control() -> String {
    "control".into()
}
fn default_outcome_label() -> String {
    "outcome".into()
}
fn default_max_gap() -> Span {
    Span::from_secs(300)
}
fn default_max_staleness() -> Span {
    Span::from_secs(300)
}
fn default_alert_after() -> Span {
    Span::from_secs(900)
}

impl PrometheusSource {
    /// Every problem with the section's values, as (field under `metrics_source`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |field: &str, message: String| out.push((field.to_string(), message));
        let https = self.prometheus.starts_with("https://");
        let authority = self.prometheus.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or("");
        if !(https || self.prometheus.starts_with("http://")) || authority.is_empty() {
            bad("prometheus", format!("`{}` must be the server's http:// or https:// address", self.prometheus));
        } else if authority.contains('@') {
            bad("prometheus", "must not carry a user or password: use basic_auth_user and basic_auth_password_env".into());
        } else if !https && (self.bearer_token_env.is_some() || self.basic_auth_user.is_some()) {
            bad("prometheus", "credentials are sent only over https://".into());
        }
        for (field, label) in [("arm_label", &self.arm_label), ("outcome_label", &self.outcome_label)] {
            if !is_label_name(label) {
                bad(field, format!("`{label}` is not a Prometheus label name"));
            }
        }
        if self.arm_label == self.outcome_label {
            bad("outcome_label", "must differ from arm_label".into());
        }
        if let Some(labels) = &self.matrix_labels {
            let taken = [self.arm_label.as_str(), self.outcome_label.as_str(), "le"];
            let named = labels.named();
            for (i, (field, label)) in named.iter().enumerate() {
                let field = format!("matrix_labels.{field}");
                if !is_label_name(label) {
                    bad(&field, format!("`{label}` is not a Prometheus label name"));
                } else if taken.contains(&label.as_str()) || named[..i].iter().any(|(_, l)| l == label) {
                    bad(&field, format!("`{label}` already names another of the section's labels"));
                }
            }
        }
        if self.treatment == self.control {
            bad("control", format!("`{}` names both arms", self.control));
        }
        let o = &self.outcomes;
        if o.success == o.error || o.success == o.timeout || o.error == o.timeout {
            bad("outcomes", "success, error and timeout need three different values".into());
        }
        let selectors = [
            ("uploads", Some(&self.uploads)),
            ("critical", self.critical.as_ref()),
            ("latency", self.latency.as_ref()),
            ("memory", self.memory.as_ref()),
        ];
        for (field, text) in selectors {
            let Some(text) = text else { continue };
            match Selector::parse(text) {
                Err(message) => bad(field, message),
                Ok(s) => {
                    let owned = [&self.arm_label].into_iter().chain((field == "uploads").then_some(&self.outcome_label));
                    for label in owned {
                        if s.matchers.iter().any(|m| &m.label == label) {
                            bad(field, format!("matches on `{label}`, which Rampart sets itself for each arm and outcome"));
                        }
                    }
                    if matches!(field, "latency" | "memory") && s.name.is_none() {
                        bad(field, "needs the histogram's metric name (Rampart reads its `_bucket` series)".into());
                    }
                }
            }
        }
        // Only variables meant for this: a plan (say, in a pull request that CI checks with
        // `--live`) must not be able to send the server's other secrets to a URL it names.
        for (field, env) in [("bearer_token_env", &self.bearer_token_env), ("basic_auth_password_env", &self.basic_auth_password_env)] {
            let named = |e: &str| {
                e.strip_prefix(CREDENTIAL_PREFIX)
                    .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            };
            if let Some(env) = env.as_deref().filter(|e| !named(e)) {
                bad(field, format!("`{env}` must be an environment variable named {CREDENTIAL_PREFIX}…, in capitals"));
            }
        }
        if self.basic_auth_user.is_some() != self.basic_auth_password_env.is_some() {
            bad("basic_auth_user", "basic authentication needs both basic_auth_user and basic_auth_password_env".into());
        }
        if self.bearer_token_env.is_some() && self.basic_auth_user.is_some() {
            bad("bearer_token_env", "choose a bearer token or basic authentication, not both".into());
        }
        for (field, span) in [("max_gap", self.max_gap), ("max_staleness", self.max_staleness), ("alert_after", self.alert_after)] {
            if span.secs() < 1 {
                bad(field, "must be at least 1s".into());
            }
        }
        out
    }

    /// How far before a span's start the queries reach: far enough that the span's first
    /// increase has a sample to start from, and an hour more, so that a scrape outage that began
    /// before the span is seen as the gap it is (the first sample after it would otherwise only
    /// start the count, and what the outage held would go unseen).
    pub fn lookback(&self) -> Span {
        Span::from_secs(self.max_gap.secs() + 3600)
    }
}

#[cfg(test)]
mod tests;
