//! Pulls a rollout's evidence from the Prometheus server its plan names (`[metrics_source]`):
//! one HTTP query of raw samples per arm and figure (`GET /api/v1/query`, a range selector at
//! the span's end), turned into per-minute rows by `app::domain::source::evidence`. A pull is
//! kept for a few seconds, so that the guard and every viewer of the control room share one
//! set of queries; a server that does not answer is a `Problem`, never an error that stops the
//! guard.

use app::domain::source::{Evidence, Problem, PrometheusSource, Query, Series};
use app::domain::units::Timestamp;
use futures_util::future::join_all;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a pull serves the same span again.
const KEPT: Duration = Duration::from_secs(5);
/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A recent pull: when it was made, the span's end it read up to, and what came back.
type Kept = (Instant, Timestamp, Arc<Evidence>);

/// The Prometheus puller and its short memory of recent pulls.
#[derive(Default)]
pub struct Prometheus {
    /// Recent pulls by (rollout, stage, span start): when, up to when, and what came back.
    kept: Mutex<HashMap<(i64, i32, i64), Kept>>,
    /// HTTP clients by certificate-authority file (none: the system's roots).
    clients: Mutex<HashMap<Option<String>, reqwest::Client>>,
    /// One pull at a time: a reader that finds no fresh pull waits for the one under way
    /// rather than sending the same queries again (viewers arriving together share one).
    pulling: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct Answer<'a> {
    status: String,
    #[serde(default, borrow)]
    data: Option<AnswerData<'a>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct AnswerData<'a> {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(borrow)]
    result: Vec<AnswerSeries<'a>>,
}

/// One series: its labels, and its samples as (seconds, value) with the value still the text
/// of the answer (borrowed, not copied: a week of samples is millions of them).
#[derive(Deserialize)]
struct AnswerSeries<'a> {
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default, borrow)]
    values: Vec<(f64, &'a str)>,
}

impl Prometheus {
    /// Rollout `rollout_id`'s stage `stage` over `(from, to]` as `source` holds it; `now` is
    /// the service's time (a span reaching past it is read up to now).
    #[allow(clippy::too_many_arguments)]
    pub async fn pull(
        &self,
        rollout_id: i64,
        stage: i32,
        source: &PrometheusSource,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        carry: [bool; 2],
    ) -> Arc<Evidence> {
        let key = (rollout_id, stage, from.millis());
        let until = to.min(now);
        let fresh = || {
            let kept = self.kept.lock().expect("not poisoned");
            kept.get(&key)
                .filter(|(at, kept_to, _)| at.elapsed() < KEPT && (kept_to.millis() - until.millis()).abs() < KEPT.as_millis() as i64)
                .map(|(_, _, evidence)| evidence.clone())
        };
        if let Some(evidence) = fresh() {
            return evidence;
        }
        let _turn = self.pulling.lock().await;
        if let Some(evidence) = fresh() {
            return evidence;
        }
        let evidence = Arc::new(self.query_all(source, from, until, now, carry).await);
        let mut kept = self.kept.lock().expect("not poisoned");
        kept.retain(|_, (at, _, _)| at.elapsed() < KEPT);
        kept.insert(key, (Instant::now(), until, evidence.clone()));
        evidence
    }

    /// Every query of `source` over `(from, to]`, sent at once; `carry` says which arms
    /// (treatment, control) have traffic. What the answered queries say is kept when another
    /// fails (a critical error they report still counts), with the failure as the problem.
    pub async fn query_all(&self, source: &PrometheusSource, from: Timestamp, to: Timestamp, now: Timestamp, carry: [bool; 2]) -> Evidence {
        let client = match self.client(source) {
            Ok(client) => client,
            Err(message) => return unreachable(message),
        };
        let range = to.since(Timestamp(from.millis() - source.lookback().millis()));
        let queries = source.queries();
        let answers = join_all(queries.iter().map(|q| query(&client, source, q, range, to))).await;
        let (mut read, mut failed) = (Vec::new(), None);
        for (query, answer) in queries.into_iter().zip(answers) {
            match answer {
                Ok(series) => read.push((query, series)),
                Err(message) => failed = failed.or(Some(message)),
            }
        }
        let mut evidence = app::domain::source::evidence(source, &read, from, to, now, carry);
        if let Some(message) = failed {
            evidence.problem = Some(Problem::Unreachable { message });
        }
        evidence
    }

    fn client(&self, source: &PrometheusSource) -> Result<reqwest::Client, String> {
        let mut clients = self.clients.lock().expect("not poisoned");
        if let Some(client) = clients.get(&source.ca_file) {
            return Ok(client.clone());
        }
        // No redirects: a query goes to the server the plan names, and its credentials with it.
        let mut builder = reqwest::Client::builder().timeout(QUERY_TIMEOUT).redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &source.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("the certificate authority file {path}: {e}"))?;
            let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("the certificate authority file {path}: {e}"))?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        clients.insert(source.ca_file.clone(), client.clone());
        Ok(client)
    }
}

fn unreachable(message: String) -> Evidence {
    Evidence { problem: Some(Problem::Unreachable { message }), ..Evidence::default() }
}

/// One query's series, or what went wrong (said so that a person can act on it).
async fn query(
    client: &reqwest::Client,
    source: &PrometheusSource,
    query: &Query,
    range: app::domain::units::Span,
    at: Timestamp,
) -> Result<Vec<Series>, String> {
    let url = format!("{}/api/v1/query", source.prometheus.trim_end_matches('/'));
    let time = format!("{:.3}", at.millis() as f64 / 1000.0);
    let mut request = client.get(&url).query(&[("query", query.text(range).as_str()), ("time", time.as_str())]);
    let env = |name: &str| std::env::var(name).map_err(|_| format!("the environment variable {name} is not set on Rampart's server"));
    if let Some(name) = &source.bearer_token_env {
        request = request.bearer_auth(env(name)?);
    }
    if let (Some(user), Some(name)) = (&source.basic_auth_user, &source.basic_auth_password_env) {
        request = request.basic_auth(user, Some(env(name)?));
    }
    let response = request.send().await.map_err(|e| format!("{url}: {}", without_url(&e)))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("{url}: {}", without_url(&e)))?;
    let answer: Answer =
        serde_json::from_str(&body).map_err(|_| format!("{url} answered {status} with something that is not Prometheus's API"))?;
    if answer.status != "success" {
        return Err(format!("{url} answered {status}: {}", answer.error.unwrap_or_default()));
    }
    let data = answer.data.ok_or_else(|| format!("{url} answered without data"))?;
    if data.result_type != "matrix" {
        return Err(format!("{url} answered a {} where raw samples were asked for", data.result_type));
    }
    data.result
        .into_iter()
        .map(|s| {
            let samples = s
                .values
                .into_iter()
                .map(|(t, v)| {
                    v.parse::<f64>()
                        .map(|v| (Timestamp((t * 1000.0).round() as i64), v))
                        .map_err(|_| format!("{url}: the value `{v}` is not a number"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Series { labels: s.metric, samples })
        })
        .collect()
}

/// What went wrong under a request error (reqwest's own message only repeats the URL, which
/// the caller says): "Connection refused", "operation timed out".
fn without_url(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        causes.push(inner.to_string());
        source = inner.source();
    }
    if error.is_timeout() {
        return format!("no answer within {}s", QUERY_TIMEOUT.as_secs());
    }
    causes.last().cloned().unwrap_or_else(|| error.to_string())
}
