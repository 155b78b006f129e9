//! Pulls a rollout's evidence from the Prometheus server its plan names (`[metrics_source]`):
//! one HTTP query of raw samples per arm and figure (`GET /api/v1/query`, a range selector at
//! the span's end), counted into per-minute rows by `app::domain::source::Tally`. A span's
//! tally is kept: the next pull reads only the samples since (and a little before, for samples
//! written late), so a week-long stage costs a week of samples once, then minutes. A pull is
//! served again for a few seconds, so that the guard and every viewer of the control room share
//! one set of queries; a server that does not answer is a `Problem`, never an error that stops
//! the guard.

use app::domain::source::{Evidence, Problem, PrometheusSource, Query, Series, Tally};
use app::domain::units::Timestamp;
use futures_util::future::join_all;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a pull serves the same span again.
const KEPT: Duration = Duration::from_secs(5);
/// How long a span's tally is kept unread before it is forgotten (and read whole again).
const TALLY_KEPT: Duration = Duration::from_secs(600);
/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A span's tally: when it was last read, up to when, for which source and arms, and what it
/// came to then.
struct Kept {
    at: Instant,
    until: Timestamp,
    source: PrometheusSource,
    carry: [bool; 2],
    tally: Tally,
    evidence: Arc<Evidence>,
}

/// The Prometheus puller and the tallies of the spans it read.
#[derive(Default)]
pub struct Prometheus {
    /// By (rollout, stage, span start).
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
    /// the service's time (a span reaching past it is read up to now); `carry` says which arms
    /// (treatment, control) the stage serves traffic to.
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
                .filter(|k| k.source == *source && k.carry == carry)
                .filter(|k| k.at.elapsed() < KEPT && (k.until.millis() - until.millis()).abs() < KEPT.as_millis() as i64)
                .map(|k| k.evidence.clone())
        };
        if let Some(evidence) = fresh() {
            return evidence;
        }
        let _turn = self.pulling.lock().await;
        if let Some(evidence) = fresh() {
            return evidence;
        }
        // The span's tally grows, unless the plan's source changed or an earlier end is asked
        // for (`explain` of a past decision): that one is read whole, and not kept.
        let kept = {
            let mut kept = self.kept.lock().expect("not poisoned");
            kept.retain(|_, k| k.at.elapsed() < TALLY_KEPT);
            kept.remove(&key)
        };
        let (mut tally, keep) = match kept {
            Some(k) if k.source == *source && k.carry == carry && k.until <= until => (k.tally, true),
            Some(k) if k.until > until => {
                self.kept.lock().expect("not poisoned").insert(key, k);
                (Tally::new(source, from, carry), false)
            }
            _ => (Tally::new(source, from, carry), true),
        };
        let evidence = Arc::new(self.read_into(&mut tally, source, until, now).await);
        if keep {
            let k = Kept { at: Instant::now(), until, source: source.clone(), carry, tally, evidence: evidence.clone() };
            self.kept.lock().expect("not poisoned").insert(key, k);
        }
        evidence
    }

    /// Every query of `source` over `(from, to]`, read whole; `carry` says which arms
    /// (treatment, control) have traffic.
    pub async fn query_all(&self, source: &PrometheusSource, from: Timestamp, to: Timestamp, now: Timestamp, carry: [bool; 2]) -> Evidence {
        self.read_into(&mut Tally::new(source, from, carry), source, to, now).await
    }

    /// Sends every query of `source` at once, each from where `tally` last read it up to `to`,
    /// and adds what came back. What the answered queries say is kept when another fails (a
    /// critical error they report still counts), with the failure as the problem; the failed
    /// query is read again from where it was next time.
    async fn read_into(&self, tally: &mut Tally, source: &PrometheusSource, to: Timestamp, now: Timestamp) -> Evidence {
        let client = match self.client(source) {
            Ok(client) => client,
            Err(message) => return unreachable(message),
        };
        let queries = source.queries();
        let starts = tally.reads_from(source, source.max_gap);
        let asked = queries.iter().zip(starts).map(|(q, start)| query(&client, source, q, to.since(start), to));
        let answers = join_all(asked).await;
        let (mut read, mut failed) = (Vec::new(), None);
        for (query, answer) in queries.into_iter().zip(answers) {
            match answer {
                Ok(series) => read.push((query, series)),
                Err(message) => failed = failed.or(Some(message)),
            }
        }
        tally.add(source, &read, to);
        let mut evidence = tally.evidence(source, to, now);
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
