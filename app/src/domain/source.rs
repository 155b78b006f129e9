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

use super::stats::{StageRows, Stats};
use super::units::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

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

/// Which arm a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Treatment,
    Control,
}

/// What a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reads {
    Uploads,
    Critical,
    LatencyBuckets,
    LatencySum,
    MemoryBuckets,
    MemorySum,
}

/// One query Rampart sends: a range selector of raw samples, evaluated at the span's end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub arm: Arm,
    pub reads: Reads,
    /// The selector without its range (`uploads_total{job="upload",arm="treatment"}`).
    pub selector: String,
}

impl Query {
    /// The PromQL text for samples in `(at - range, at]`.
    pub fn text(&self, range: Span) -> String {
        format!("{}[{}s]", self.selector, range.secs().max(1))
    }
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

    /// The queries one pull sends, two arms by what the plan reads. Only for a section whose
    /// [`PrometheusSource::problems`] are none.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = Vec::new();
        for arm in [Arm::Treatment, Arm::Control] {
            let value = match arm {
                Arm::Treatment => &self.treatment,
                Arm::Control => &self.control,
            };
            let with_arm = |text: &str, suffix: &str| {
                let mut s = Selector::parse(text).expect("checked when the plan was read");
                // A histogram named by its base or by its `_bucket` series.
                if let Some(name) = s.name.as_mut().filter(|_| !suffix.is_empty()) {
                    *name = format!("{}{suffix}", name.strip_suffix("_bucket").unwrap_or(name));
                }
                s.matchers.push(Matcher { label: self.arm_label.clone(), op: "=".into(), value: value.clone() });
                s.to_string()
            };
            out.push(Query { arm, reads: Reads::Uploads, selector: with_arm(&self.uploads, "") });
            if let Some(c) = &self.critical {
                out.push(Query { arm, reads: Reads::Critical, selector: with_arm(c, "") });
            }
            if let Some(l) = &self.latency {
                out.push(Query { arm, reads: Reads::LatencyBuckets, selector: with_arm(l, "_bucket") });
                out.push(Query { arm, reads: Reads::LatencySum, selector: with_arm(l, "_sum") });
            }
            if let Some(m) = &self.memory {
                out.push(Query { arm, reads: Reads::MemoryBuckets, selector: with_arm(m, "_bucket") });
                out.push(Query { arm, reads: Reads::MemorySum, selector: with_arm(m, "_sum") });
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

/// A series selector: `name{label="value",…}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    pub op: String,
    pub value: String,
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Selector {
    /// Parses a PromQL series selector; the message says what is wrong and where (by
    /// character). Functions, operators and ranges are refused: Rampart reads raw samples.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let s = text.trim();
        let at = |i: usize, what: &str| format!("`{text}`: {what} at character {}", text.len() - text.trim_start().len() + i + 1);
        let name_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(s.len());
        let name = &s[..name_end];
        if !name.is_empty() && !is_metric_name(name) {
            return Err(at(0, "a metric name starts with a letter, `_` or `:`"));
        }
        let rest = s[name_end..].trim_start();
        let offset = s.len() - rest.len();
        let mut matchers = Vec::new();
        if rest.is_empty() {
            if name.is_empty() {
                return Err(format!("`{text}`: a selector needs a metric name or a matcher"));
            }
        } else {
            let Some(body) = rest.strip_prefix('{') else {
                return Err(at(offset, "expected `{` (only a series selector is read: no functions, operators or ranges)"));
            };
            let chars: Vec<(usize, char)> = body.char_indices().collect();
            let mut i = 0;
            let skip_ws = |i: &mut usize| {
                while *i < chars.len() && chars[*i].1.is_whitespace() {
                    *i += 1;
                }
            };
            let pos = |i: usize| offset + 1 + chars.get(i).map_or(body.len(), |c| c.0);
            loop {
                skip_ws(&mut i);
                if i < chars.len() && chars[i].1 == '}' {
                    i += 1;
                    break;
                }
                let start = i;
                while i < chars.len() && (chars[i].1.is_ascii_alphanumeric() || chars[i].1 == '_') {
                    i += 1;
                }
                let label: String = chars[start..i].iter().map(|c| c.1).collect();
                if !is_label_name(&label) {
                    return Err(at(pos(start), "expected a label name"));
                }
                skip_ws(&mut i);
                let op: String = match (chars.get(i).map(|c| c.1), chars.get(i + 1).map(|c| c.1)) {
                    (Some('='), Some('~')) | (Some('!'), Some('=')) | (Some('!'), Some('~')) => {
                        i += 2;
                        chars[i - 2..i].iter().map(|c| c.1).collect()
                    }
                    (Some('='), _) => {
                        i += 1;
                        "=".into()
                    }
                    _ => return Err(at(pos(i), "expected =, !=, =~ or !~")),
                };
                skip_ws(&mut i);
                let Some(&(_, quote)) = chars.get(i).filter(|c| matches!(c.1, '"' | '\'' | '`')) else {
                    return Err(at(pos(i), "expected a quoted value"));
                };
                i += 1;
                let mut value = String::new();
                loop {
                    match chars.get(i).map(|c| c.1) {
                        None => return Err(at(pos(i), "the quoted value is not closed")),
                        Some(c) if c == quote => break,
                        Some('\\') if quote != '`' => {
                            i += 1;
                            match chars.get(i).map(|c| c.1) {
                                Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                                Some('n') => value.push('\n'),
                                _ => return Err(at(pos(i), "unknown escape")),
                            }
                        }
                        Some(c) => value.push(c),
                    }
                    i += 1;
                }
                i += 1;
                matchers.push(Matcher { label, op, value });
                skip_ws(&mut i);
                match chars.get(i).map(|c| c.1) {
                    Some(',') => i += 1,
                    Some('}') => {}
                    _ => return Err(at(pos(i), "expected `,` or `}`")),
                }
            }
            if i < chars.len() {
                return Err(at(pos(i), "nothing may follow the selector (no functions, operators or ranges)"));
            }
            if name.is_empty() && !matchers.iter().any(|m| m.op == "=" && !m.value.is_empty()) {
                return Err(format!("`{text}`: a selector without a name needs a matcher that is not empty"));
            }
        }
        Ok(Selector { name: (!name.is_empty()).then(|| name.to_string()), matchers })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_deref().unwrap_or(""))?;
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            let value = m.value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            write!(f, "{}{}{}\"{}\"", if i > 0 { "," } else { "" }, m.label, m.op, value)?;
        }
        f.write_str("}")
    }
}

/// One series a query returned: its labels and its raw samples, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(Timestamp, f64)>,
}

/// Why the source's figures for a span cannot be trusted. Every verdict built on them is
/// inconclusive with this reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The server did not answer, or answered with an error.
    Unreachable { message: String },
    /// A query matched no series at all.
    NoSeries { query: String },
    /// The newest sample is older than the plan allows.
    Stale { query: String, newest: Timestamp },
    /// No samples between these two times, inside the judged span.
    Gap { query: String, from: Timestamp, to: Timestamp },
    /// An uploads series whose outcome label is none of the plan's outcomes: its uploads would
    /// count as neither success nor failure.
    UnknownOutcome { query: String, value: String },
    /// A histogram that did not observe every upload (or observed more): its mean and spread
    /// would be of other uploads than the rates'.
    Mismatch { query: String, observed: u64, uploads: u64 },
    /// The plan names a server the operator has not allowed Rampart to read.
    NotAllowed { url: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreachable { message } => write!(f, "Prometheus did not answer: {message}"),
            Problem::NoSeries { query } => write!(f, "`{query}` matched no series"),
            Problem::Stale { query, newest } => write!(f, "`{query}` is stale: its newest sample is from {}", utc(*newest)),
            Problem::Gap { query, from, to } => {
                write!(f, "`{query}` has no samples from {} to {} (a scrape gap)", utc(*from), utc(*to))
            }
            Problem::UnknownOutcome { query, value } => {
                write!(f, "`{query}` has a series whose outcome is `{value}`, none of the plan's outcomes")
            }
            Problem::Mismatch { query, observed, uploads } => {
                write!(f, "`{query}` observed {observed} uploads where the uploads counter has {uploads}")
            }
            Problem::NotAllowed { url } => {
                write!(f, "{url} is not among the Prometheus servers this Rampart may read (RAMPART_PROMETHEUS_ALLOW)")
            }
        }
    }
}

/// `2026-12-04 17:05:30 UTC`: a sample's time to the second.
fn utc(t: Timestamp) -> String {
    let secs = t.millis().div_euclid(1000);
    let day = secs.rem_euclid(86_400);
    format!("{} {:02}:{:02}:{:02} UTC", super::units::civil_date(secs.div_euclid(86_400)), day / 3600, day % 3600 / 60, day % 60)
}

/// The counts a pull came to for one query: what a decision's receipt shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pulled {
    pub query: String,
    /// The time the query was evaluated at (the span's end).
    pub at: Timestamp,
    pub series: usize,
    /// The total increase over the span, summed over its series (per bucket for a histogram).
    pub increase: f64,
    /// Counter restarts seen and counted from zero.
    pub resets: u32,
}

/// What a pull came to: the per-minute rows the statistics read, each query's receipt, and the
/// first problem found (if any, every verdict on these rows is inconclusive).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    pub rows: StageRows,
    pub pulled: Vec<Pulled>,
    pub problem: Option<Problem>,
}

/// One series' steps over a span: each increase at its minute, the restarts seen, and the
/// first gap (the samples on either side).
struct Steps {
    steps: Vec<(Timestamp, f64)>,
    resets: u32,
    gap: Option<(Timestamp, Timestamp)>,
}

/// The increase between consecutive samples of one counter series over `(from, to]`, each at the
/// minute of its later sample; a drop is a restart, counted from zero. The first sample only
/// starts the count (as `increase()` does: a counter first seen mid-span counts from its first
/// scrape, so services should create their series at zero). Also reports restarts and the first
/// gap longer than `max_gap` whose later sample lies in the span.
fn increases(samples: &[(Timestamp, f64)], from: Timestamp, to: Timestamp, max_gap: Span) -> Steps {
    let (mut out, mut resets, mut gap) = (Vec::new(), 0, None);
    for pair in samples.windows(2) {
        let ((t0, v0), (t1, v1)) = (pair[0], pair[1]);
        if t1 <= from || t1 > to {
            continue;
        }
        if gap.is_none() && t1.millis() - t0.millis() > max_gap.millis() {
            gap = Some((t0, t1));
        }
        let amount = if v1 < v0 {
            resets += 1;
            v1
        } else {
            v1 - v0
        };
        out.push((Timestamp(t1.millis().div_euclid(60_000) * 60_000), amount));
    }
    Steps { steps: out, resets, gap }
}

/// Turns the series each query returned into per-minute rows over `(from, to]`, judged at
/// `now` for staleness. `answers` holds, per query of [`PrometheusSource::queries`] that was
/// answered, its series; `carry` says which arms (treatment, control) the stage serves traffic
/// to: an arm with none may have no series or stale ones.
pub fn evidence(
    source: &PrometheusSource,
    answers: &[(Query, Vec<Series>)],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    carry: [bool; 2],
) -> Evidence {
    let mut tally = Tally::new(source, from, carry);
    tally.add(source, answers, to);
    tally.evidence(source, to, now)
}

/// A span's figures grown sample by sample: what [`evidence`] computes in one go, kept so that
/// a later pull adds only the samples since the last (each series continues from its last
/// sample, so a step across two pulls counts once, and a restart or gap across them is seen).
#[derive(Clone, Debug)]
pub struct Tally {
    from: Timestamp,
    carry: [bool; 2],
    rows: [BTreeMap<Timestamp, Stats>; 2],
    /// Per arm, each minute's latency and memory sums from the histograms' `_sum` series.
    sums: [[BTreeMap<Timestamp, f64>; 2]; 2],
    /// Per query of [`PrometheusSource::queries`], in order.
    queries: Vec<QueryTally>,
    /// Problems that stay once seen in the span (a gap, an unknown outcome).
    seen: Option<Problem>,
}

#[derive(Clone, Debug)]
struct QueryTally {
    query: Query,
    /// Each series' last counted sample, by a hash of its labels (a week's tally of a query
    /// with many series keeps one word per series, not its labels).
    last: BTreeMap<u64, (Timestamp, f64)>,
    increase: f64,
    resets: u32,
    /// For a histogram: the observations counted (its `+Inf` bucket's increase).
    observed: f64,
    /// Up to when this query has been answered.
    read_until: Option<Timestamp>,
    /// A gap the last read could not confirm: a series whose last counted sample lay before
    /// where that read began, and whose next sample came more than `max_gap` later. Samples
    /// written late may fill it, so the series waits at its last sample and the next read
    /// starts there; until then the span is not vouched for.
    unconfirmed: Option<(Timestamp, Timestamp)>,
}

/// A series' key in a [`QueryTally`]: a hash of its labels.
fn series_key(labels: &BTreeMap<String, String>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut hasher);
    hasher.finish()
}

impl Tally {
    pub fn new(source: &PrometheusSource, from: Timestamp, carry: [bool; 2]) -> Tally {
        let queries = source
            .queries()
            .into_iter()
            .map(|query| QueryTally {
                query,
                last: BTreeMap::new(),
                increase: 0.0,
                resets: 0,
                observed: 0.0,
                read_until: None,
                unconfirmed: None,
            })
            .collect();
        Tally { from, carry, rows: Default::default(), sums: Default::default(), queries, seen: None }
    }

    /// Where each query's next read starts: from the span's lookback the first time, else
    /// `max_gap` before where it was last answered (samples already counted are skipped, so
    /// the overlap only catches samples written late), or from the start of a gap the last
    /// read could not confirm.
    pub fn reads_from(&self, source: &PrometheusSource) -> Vec<Timestamp> {
        self.queries.iter().map(|q| self.read_start(q, source)).collect()
    }

    fn read_start(&self, q: &QueryTally, source: &PrometheusSource) -> Timestamp {
        let first = self.from.millis() - source.lookback().millis();
        let Some(until) = q.read_until else { return Timestamp(first) };
        let overlap = until.millis() - source.max_gap.millis();
        let unconfirmed = q.unconfirmed.map_or(overlap, |(t0, _)| t0.millis());
        Timestamp(overlap.min(unconfirmed).max(first))
    }

    /// Adds what `answers` (by query, answered up to `to`) hold beyond what was counted.
    pub fn add(&mut self, source: &PrometheusSource, answers: &[(Query, Vec<Series>)], to: Timestamp) {
        let range = to.since(Timestamp(self.from.millis() - source.lookback().millis()));
        for (query, series) in answers {
            let Some(index) = self.queries.iter().position(|q| &q.query == query) else { continue };
            let start = self.read_start(&self.queries[index], source);
            let mut unconfirmed: Option<(Timestamp, Timestamp)> = None;
            let text = query.text(range);
            let arm = usize::from(query.arm == Arm::Control);
            // Histogram buckets: per minute, each bound's increase.
            let mut buckets: BTreeMap<Timestamp, Vec<(f64, f64)>> = BTreeMap::new();
            for s in series {
                let tally = &mut self.queries[index];
                let key = series_key(&s.labels);
                let last = tally.last.get(&key).copied();
                let next = last.and_then(|(t0, _)| s.samples.iter().find(|(t, _)| *t > t0).map(|(t1, _)| (t0, *t1)));
                if let Some((t0, t1)) = next.filter(|(t0, t1)| *t0 < start && t1.millis() - t0.millis() > source.max_gap.millis()) {
                    unconfirmed = Some(unconfirmed.map_or((t0, t1), |(a, b)| (a.min(t0), b.max(t1))));
                    continue;
                }
                let mut samples: Vec<(Timestamp, f64)> = last.into_iter().collect();
                samples.extend(s.samples.iter().copied().filter(|(t, _)| last.is_none_or(|(l, _)| *t > l)));
                let Some(newest) = samples.last().copied() else { continue };
                tally.last.insert(key, newest);
                let Steps { steps, resets, gap } = increases(&samples, self.from, to, source.max_gap);
                tally.resets += resets;
                if let Some((a, b)) = gap {
                    self.seen.get_or_insert(Problem::Gap { query: text.clone(), from: a, to: b });
                }
                let label = |name: &str| s.labels.get(name).map(String::as_str);
                let o = &source.outcomes;
                let outcome = label(&source.outcome_label);
                if query.reads == Reads::Uploads && ![&o.success, &o.error, &o.timeout].into_iter().any(|v| Some(v.as_str()) == outcome) {
                    self.seen.get_or_insert(Problem::UnknownOutcome { query: text.clone(), value: outcome.unwrap_or("").to_string() });
                }
                let le = label("le").and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::INFINITY);
                for (minute, amount) in steps {
                    tally.increase += amount;
                    let n = amount.round().max(0.0) as u64;
                    let stats = self.rows[arm].entry(minute).or_default();
                    match query.reads {
                        Reads::Uploads if outcome == Some(&o.success) => stats.success += n,
                        Reads::Uploads if outcome == Some(&o.error) => stats.error += n,
                        Reads::Uploads if outcome == Some(&o.timeout) => stats.timeout += n,
                        Reads::Uploads => {}
                        Reads::Critical => stats.critical += n,
                        Reads::LatencyBuckets | Reads::MemoryBuckets => buckets.entry(minute).or_default().push((le, amount)),
                        Reads::LatencySum => *self.sums[arm][0].entry(minute).or_default() += amount,
                        Reads::MemorySum => *self.sums[arm][1].entry(minute).or_default() += amount,
                    }
                }
            }
            let tally = &mut self.queries[index];
            for (minute, steps) in buckets {
                tally.observed += add_buckets(self.rows[arm].entry(minute).or_default(), query.reads, steps, source);
            }
            tally.read_until = Some(tally.read_until.map_or(to, |t| t.max(to)));
            tally.unconfirmed = unconfirmed;
        }
    }

    /// The evidence counted so far, as of `to` (the span's end) and `now`.
    pub fn evidence(&self, source: &PrometheusSource, to: Timestamp, now: Timestamp) -> Evidence {
        let range = to.since(Timestamp(self.from.millis() - source.lookback().millis()));
        let mut problem = None;
        let mut pulled = Vec::new();
        for tally in self.queries.iter().filter(|q| q.read_until.is_some()) {
            let text = tally.query.text(range);
            let arm = usize::from(tally.query.arm == Arm::Control);
            if self.carry[arm] && tally.last.is_empty() {
                problem.get_or_insert(Problem::NoSeries { query: text.clone() });
            }
            // A series held at its last sample for an unconfirmed gap looks stale; the gap is
            // what the span is waiting on.
            if let Some((from, to)) = tally.unconfirmed {
                problem.get_or_insert(Problem::Gap { query: text.clone(), from, to });
            }
            let newest = tally.last.values().map(|(t, _)| *t).max();
            if let Some(newest) = newest.filter(|n| self.carry[arm] && now.min(to).millis() - n.millis() > source.max_staleness.millis()) {
                problem.get_or_insert(Problem::Stale { query: text.clone(), newest });
            }
            pulled.push(Pulled { query: text, at: to, series: tally.last.len(), increase: tally.increase, resets: tally.resets });
        }
        if let Some(seen) = &self.seen {
            problem.get_or_insert(seen.clone());
        }
        let mut rows = self.rows.clone();
        for (arm, minutes) in rows.iter_mut().enumerate() {
            // The sums as the histograms counted them, not as the buckets' shape suggests.
            for (minute, sum) in &self.sums[arm][0] {
                minutes.entry(*minute).or_default().latency_sum_ms = sum * source.latency_unit.to_ms();
            }
            for (minute, sum) in &self.sums[arm][1] {
                minutes.entry(*minute).or_default().memory_sum_mb = sum * source.memory_unit.to_mb();
            }
            let uploads: u64 = minutes.values().map(Stats::count).sum();
            let histograms = self.queries.iter().filter(|q| {
                q.query.arm == [Arm::Treatment, Arm::Control][arm] && matches!(q.query.reads, Reads::LatencyBuckets | Reads::MemoryBuckets)
            });
            for tally in histograms.filter(|q| q.read_until.is_some()) {
                let count = tally.observed.round().max(0.0) as u64;
                if self.carry[arm] && count.abs_diff(uploads) > (uploads / 100).max(2) {
                    problem.get_or_insert(Problem::Mismatch { query: tally.query.text(range), observed: count, uploads });
                }
            }
        }
        let [treatment, control] = rows;
        Evidence { rows: StageRows { treatment: treatment.into_iter().collect(), control: control.into_iter().collect() }, pulled, problem }
    }
}

/// Adds one minute of a histogram's bucket increases (`steps`: each `le` bound with one
/// series' increase; bounds repeat across series) to `stats`, each bucket's count spread evenly
/// over `(previous bound, bound]` as `histogram_quantile` reads it, and those above the last
/// finite bound at that bound. Returns the minute's observations.
fn add_buckets(stats: &mut Stats, reads: Reads, mut steps: Vec<(f64, f64)>, source: &PrometheusSource) -> f64 {
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut bounds: Vec<(f64, f64)> = Vec::new();
    for (le, amount) in steps {
        match bounds.last_mut() {
            Some(last) if last.0 == le => last.1 += amount,
            _ => bounds.push((le, amount)),
        }
    }
    let top = bounds.iter().rev().map(|b| b.0).find(|b| b.is_finite()).unwrap_or(0.0);
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, cumulative) in bounds {
        let upper = if le.is_finite() { le } else { top };
        let count = (cumulative - below).round().max(0.0) as u64;
        below = cumulative.max(below);
        if count > 0 {
            if reads == Reads::LatencyBuckets {
                let unit = source.latency_unit.to_ms();
                stats.latency.add_uniform(lower * unit, upper * unit, count);
                stats.latency_sum_ms += (lower + upper) / 2.0 * unit * count as f64;
            } else {
                let (a, b) = (lower * source.memory_unit.to_mb(), upper * source.memory_unit.to_mb());
                stats.memory_sum_mb += (a + b) / 2.0 * count as f64;
                stats.memory_sq_sum_mb2 += (a * a + a * b + b * b) / 3.0 * count as f64;
                stats.memory_max_mb = stats.memory_max_mb.max(b);
            }
        }
        lower = upper;
    }
    below
}

#[cfg(test)]
mod tests;
