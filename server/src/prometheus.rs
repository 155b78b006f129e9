//! Pulls a rollout's evidence from the Prometheus server its plan names (`[metrics_source]`):
//! one HTTP query of raw samples per arm and figure (`GET /api/v1/query`, a range selector at
//! the span's end), counted into per-minute rows by `app::domain::source::Tally`. A span's
//! tally is kept: the next pull reads only the samples since (and a little before, for samples
//! written late), so a week-long stage costs a week of samples once, then minutes. A pull is
//! served again for a few seconds, so that the guard and every viewer of the control room share
//! one set of queries; a server that does not answer, or that the operator has not allowed
//! (`RAMPART_PROMETHEUS_ALLOW`), is a `Problem`, never an error that stops the guard.

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
/// How many spans' tallies a stage keeps, the most recently read: the guard's (read every few
/// seconds, so always among them) and the last other one (a report's last 24 hours, whose
/// start moves with every report, or a past stay's).
const TALLIES_PER_STAGE: usize = 2;
/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A span: (rollout, stage, span start).
type SpanKey = (i64, i32, i64);

/// A span's tally: when it was last read, up to when, for which source and arms, and what it
/// came to then (kept for [`KEPT`] only: a week's rows are not held longer than they serve).
struct Kept {
    at: Instant,
    until: Timestamp,
    source: PrometheusSource,
    carry: [bool; 2],
    tally: Tally,
    evidence: Option<Arc<Evidence>>,
}

/// The Prometheus servers plans may read, as `scheme://host:port`; none named: any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins(Vec<String>);

impl Origins {
    /// Comma-separated addresses (`https://prometheus.internal:9090,http://10.0.0.7:9090`);
    /// a path after the address is ignored, a port left out is the scheme's.
    pub fn parse(text: &str) -> Result<Origins, String> {
        text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(origin).collect::<Result<_, _>>().map(Origins)
    }

    /// `RAMPART_PROMETHEUS_ALLOW` as the command line's tools read it (`rampart serve` takes it
    /// through its configuration): a plan checked live in CI, or an explanation, reads only
    /// the servers the server itself would.
    pub fn from_env() -> Result<Origins, String> {
        Origins::parse(&std::env::var("RAMPART_PROMETHEUS_ALLOW").unwrap_or_default()).map_err(|e| format!("RAMPART_PROMETHEUS_ALLOW: {e}"))
    }

    /// Whether a plan may read the server at `url`.
    pub fn allow(&self, url: &str) -> bool {
        self.0.is_empty() || origin(url).is_ok_and(|o| self.0.contains(&o))
    }
}

/// `https://Prom.internal/x` → `https://prom.internal:443`.
fn origin(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not an address: {e}"))?;
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return Err(format!("`{url}` names no host"));
    };
    match parsed.scheme() {
        scheme @ ("http" | "https") => Ok(format!("{scheme}://{}:{port}", host.to_ascii_lowercase())),
        scheme => Err(format!("`{url}`: a Prometheus server is read over http or https, not {scheme}")),
    }
}

/// The Prometheus puller and the tallies of the spans it read.
#[derive(Default)]
pub struct Prometheus {
    /// The servers plans may read.
    allowed: Origins,
    kept: Mutex<HashMap<SpanKey, Kept>>,
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

/// A span's tally taken out for a pull, put back however the pull ends: a pull cancelled
/// while its queries are out (a viewer who left) leaves the tally as it was, not forgotten.
struct Taken<'a> {
    kept: &'a Mutex<HashMap<SpanKey, Kept>>,
    key: SpanKey,
    entry: Option<Kept>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else { return };
        let mut kept = self.kept.lock().expect("not poisoned");
        kept.insert(self.key, entry);
        // The stage's spans read most recently stay; the others go.
        let (rollout, stage, _) = self.key;
        let mut spans: Vec<(SpanKey, Instant)> =
            kept.iter().filter(|(k, _)| (k.0, k.1) == (rollout, stage)).map(|(k, v)| (*k, v.at)).collect();
        spans.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        for (key, _) in spans.into_iter().skip(TALLIES_PER_STAGE) {
            kept.remove(&key);
        }
    }
}

impl Prometheus {
    /// A puller that reads only the `allowed` servers.
    pub fn allowing(allowed: Origins) -> Prometheus {
        Prometheus { allowed, ..Prometheus::default() }
    }

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
                .and_then(|k| k.evidence.clone())
        };
        if let Some(evidence) = fresh() {
            return evidence;
        }
        let _turn = self.pulling.lock().await;
        if let Some(evidence) = fresh() {
            return evidence;
        }
        let entry = {
            let mut kept = self.kept.lock().expect("not poisoned");
            kept.retain(|_, k| k.at.elapsed() < TALLY_KEPT);
            for k in kept.values_mut().filter(|k| k.at.elapsed() >= KEPT) {
                k.evidence = None;
            }
            kept.remove(&key)
        };
        let mut taken = Taken { kept: &self.kept, key, entry };
        // An earlier end than the tally's (`explain` of a past decision) is read whole, and
        // not kept; a changed plan source starts the tally again.
        if taken.entry.as_ref().is_some_and(|k| k.until > until) {
            return Arc::new(self.query_all(source, from, until, now, carry).await);
        }
        if !taken.entry.as_ref().is_some_and(|k| k.source == *source && k.carry == carry) {
            taken.entry = None;
        }
        let kept = taken.entry.get_or_insert_with(|| Kept {
            at: Instant::now(),
            until: from,
            source: source.clone(),
            carry,
            tally: Tally::new(source, from, carry),
            evidence: None,
        });
        let evidence = Arc::new(self.read_into(&mut kept.tally, source, until, now).await);
        (kept.at, kept.until, kept.evidence) = (Instant::now(), until, Some(evidence.clone()));
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
        if !self.allowed.allow(&source.prometheus) {
            return Evidence { problem: Some(Problem::NotAllowed { url: source.prometheus.clone() }), ..Evidence::default() };
        }
        let client = match self.client(source) {
            Ok(client) => client,
            Err(message) => return unreachable(message),
        };
        let queries = source.queries();
        let starts = tally.reads_from(source);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn an_operator_names_the_servers_plans_may_read() {
        let allowed = Origins::parse("https://Prom.internal:9090/, http://10.0.0.7").unwrap();
        assert!(allowed.allow("https://prom.internal:9090"));
        assert!(allowed.allow("https://PROM.internal:9090/prometheus"), "a path under an allowed server");
        assert!(allowed.allow("http://10.0.0.7:80"), "the scheme's port when none is named");
        assert!(!allowed.allow("https://prom.internal:9091"), "another port");
        assert!(!allowed.allow("http://prom.internal:9090"), "another scheme");
        assert!(!allowed.allow("https://prom.internal.evil.example:9090"));
        assert!(!allowed.allow("not an address"));
        assert!(Origins::default().allow("http://anything:1234"), "none named: any");
        assert_eq!(Origins::parse(" , ").unwrap(), Origins::default());
        let refused = Origins::parse("https://prom.internal:9090,ftp://files.internal").unwrap_err();
        assert!(refused.contains("ftp://files.internal") && refused.contains("http or https"), "{refused}");
        assert!(Origins::parse("prom.internal:9090").is_err(), "an address without its scheme");
    }

    /// A Prometheus that answers every query with no series, counting them, or never answers
    /// while `stall` is set.
    async fn stand_in() -> (String, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let (stall, asked) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (s, a) = (stall.clone(), asked.clone());
        let app = axum::Router::new().route(
            "/api/v1/query",
            axum::routing::get(move || {
                let (stall, asked) = (s.clone(), a.clone());
                async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    if stall.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, stall, asked)
    }

    fn source(url: &str) -> PrometheusSource {
        serde_json::from_value(serde_json::json!({ "prometheus": url, "uploads": "uploads_total" })).unwrap()
    }

    #[tokio::test]
    async fn a_cancelled_pull_keeps_the_tally_and_a_stage_keeps_two_spans() {
        let (url, stall, asked) = stand_in().await;
        let (source, prometheus, s) = (source(&url), Prometheus::default(), |secs: i64| Timestamp(secs * 1000));
        let pull = |from: i64, to: i64| prometheus.pull(1, 0, &source, s(from), s(to), s(to), [true, false]);
        pull(0, 100).await;
        let until = || prometheus.kept.lock().unwrap().get(&(1, 0, 0)).map(|k| k.until);
        assert_eq!(until(), Some(s(100)));
        // A viewer leaves while the next pull's queries are out: the tally stays as it was.
        stall.store(true, Ordering::SeqCst);
        assert!(tokio::time::timeout(Duration::from_millis(300), pull(0, 200)).await.is_err(), "the pull was not cancelled");
        assert_eq!(until(), Some(s(100)), "the cancelled pull's tally was not put back");
        stall.store(false, Ordering::SeqCst);
        pull(0, 200).await;
        assert_eq!(until(), Some(s(200)));
        // Reports of the last hours, each starting later, between the guard's pulls of the
        // stage: the guard's span and the last report's stay.
        let spans = || {
            let mut spans: Vec<i64> = prometheus.kept.lock().unwrap().keys().map(|k| k.2).collect();
            spans.sort();
            spans
        };
        for from in [60, 120, 180] {
            pull(from, 300 + from).await;
            pull(0, 300 + from).await;
        }
        assert_eq!(spans(), [0, 180_000]);
        // Two reads of other spans since: the two most recently read stay.
        pull(240, 600).await;
        pull(300, 600).await;
        assert_eq!(spans(), [240_000, 300_000]);
        // A server the operator did not allow is sent nothing.
        let before = asked.load(Ordering::SeqCst);
        let elsewhere = Prometheus::allowing(Origins::parse("http://prometheus.internal:9090").unwrap());
        let evidence = elsewhere.pull(1, 0, &source, s(0), s(100), s(100), [true, false]).await;
        assert_eq!(evidence.problem, Some(Problem::NotAllowed { url: url.clone() }));
        assert_eq!(asked.load(Ordering::SeqCst), before);
    }
}
