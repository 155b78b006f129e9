//! `rampart simulate`: a stand-in for the upload service. Synthetic users upload files; each
//! upload asks the flag (bucketing locally from the config Rampart serves, refreshed with
//! ETag polling) and reports one metrics event. Sync and async differ the way the seeds expect
//! (async: far less memory, lower latency, fewer timeouts), and a regression can be injected
//! into the treatment arm at a chosen time. It drives demos, browser tests and benchmarks.

use app::domain::bucketing;
use app::domain::event::Variant;
use app::domain::plan::StageFlag;
use app::domain::units::{Span, Timestamp};
use app::model::FlagConfig;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Something going wrong in the treatment arm from `after` on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regression {
    /// Extra share of treatment uploads that fail, in percent.
    ErrorRate(f64),
    /// Treatment latency multiplied.
    Latency(f64),
    /// Treatment memory multiplied.
    Memory(f64),
    /// Share of treatment uploads that fail critically, in percent.
    Critical(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Injection {
    pub regression: Regression,
    pub after: Span,
}

impl Injection {
    /// Reads `error=20%@30s`, `latency=3x@2m`, `memory=1.5x@0s`, `critical=1%@10s`.
    pub fn parse(text: &str) -> Result<Injection, String> {
        let usage = || format!("`{text}`: expected KIND=AMOUNT@WHEN, e.g. error=20%@30s, latency=3x@2m, memory=2x@0s, critical=1%@1m");
        let (what, when) = text.split_once('@').ok_or_else(usage)?;
        let (kind, amount) = what.split_once('=').ok_or_else(usage)?;
        let number = |suffix: char| amount.strip_suffix(suffix).and_then(|n| n.parse::<f64>().ok()).filter(|n| n.is_finite() && *n >= 0.0);
        let regression = match kind {
            "error" => Regression::ErrorRate(number('%').ok_or_else(usage)?),
            "critical" => Regression::Critical(number('%').ok_or_else(usage)?),
            "latency" => Regression::Latency(number('x').ok_or_else(usage)?),
            "memory" => Regression::Memory(number('x').ok_or_else(usage)?),
            _ => return Err(usage()),
        };
        Ok(Injection { regression, after: Span::parse(when).map_err(|e| format!("`{text}`: {e}"))? })
    }
}

const PROVIDERS: [&str; 2] = ["kimi", "glm"];
const FILE_TYPES: [&str; 6] = ["text", "json", "csv", "markdown", "python", "binary"];
const SIZES_MB: [f64; 4] = [1.0, 10.0, 50.0, 100.0];

/// The upload service's behaviour, deterministic for a seed.
pub struct Model {
    state: u64,
    run: u64,
    sequence: u64,
}

impl Model {
    /// A model whose randomness follows `seed`; event ids are `sim-<run>-<n>`, so runs with
    /// different `run` numbers never collide.
    pub fn new(seed: u64, run: u64) -> Model {
        Model { state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, run, sequence: 0 }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[(self.next_u64() % options.len() as u64) as usize]
    }

    /// One user out of `users`.
    pub fn unit(&mut self, users: u64) -> String {
        format!("user-{}", self.next_u64() % users.max(1))
    }

    /// One upload by `unit` at `at`, served by `variant`, with `regressions` active.
    pub fn event(&mut self, at: Timestamp, variant: Variant, regressions: &[Regression]) -> Value {
        self.sequence += 1;
        let size_mb = self.pick(&SIZES_MB) * (0.5 + self.uniform() * 0.5);
        let treatment = variant == Variant::Treatment;
        // Sync reads the whole file into memory; async streams it (the seeds: −80–90% memory,
        // −30–50% latency, −95% timeouts).
        let (mut latency, mut memory, timeout_p) = if treatment {
            (120.0 + 18.0 * size_mb, 12.0 + 0.1 * size_mb, 0.0002)
        } else {
            (200.0 + 32.0 * size_mb, 40.0 + 3.0 * size_mb, 0.004)
        };
        latency *= (0.25 * self.normal()).exp();
        memory *= 1.0 + 0.05 * self.normal().abs();
        let (mut error_p, mut critical_p) = (0.002, 0.0);
        if treatment {
            for regression in regressions {
                match *regression {
                    Regression::ErrorRate(pct) => error_p += pct / 100.0,
                    Regression::Latency(factor) => latency *= factor,
                    Regression::Memory(factor) => memory *= factor,
                    Regression::Critical(pct) => critical_p += pct / 100.0,
                }
            }
        }
        let roll = self.uniform();
        let critical = self.uniform() < critical_p;
        let outcome = if critical || roll < error_p {
            "error"
        } else if roll < error_p + timeout_p {
            latency = latency.max(30_000.0);
            "timeout"
        } else {
            "success"
        };
        let mut event = json!({
            "timestamp": at.millis(),
            "event_id": format!("sim-{}-{}", self.run, self.sequence),
            "variant": if treatment { "async" } else { "sync" },
            "outcome": outcome,
            "latency_ms": (latency * 10.0).round() / 10.0,
            "memory_mb": (memory * 10.0).round() / 10.0,
            "provider": self.pick(&PROVIDERS),
            "file_type": self.pick(&FILE_TYPES),
            "size_bytes": (size_mb * 1_048_576.0) as u64,
        });
        if outcome == "error" {
            event["error_kind"] = json!(if critical { "data_loss" } else { self.pick(&["provider_5xx", "parse_error", "quota"]) });
            event["critical"] = json!(critical);
        }
        event
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Plan {
    pub url: String,
    pub flag: String,
    /// Sent as `Authorization: Bearer`; needs the `evaluate` and `ingest` scopes.
    pub token: secrecy::SecretString,
    /// Uploads per second.
    pub rate: f64,
    pub users: u64,
    /// How long to run live; `None` runs until Ctrl-C.
    pub duration: Option<Span>,
    /// Instead of running live, write this much history ending now, at `rate`, as fast as possible.
    pub backfill: Option<Span>,
    pub injections: Vec<Injection>,
    pub seed: u64,
}

/// Runs the simulation; prints a status line every few seconds.
pub async fn run(plan: Plan) -> anyhow::Result<()> {
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", secrecy::ExposeSecret::expose_secret(&plan.token)))
        .map_err(|_| anyhow::anyhow!("the token is not valid header text"))?;
    auth.set_sensitive(true);
    let http = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, auth)]))
        .build()?;
    let mut config = Config::fetch(&http, &plan).await?;
    let mut model = Model::new(plan.seed, chrono::Utc::now().timestamp_millis() as u64);
    let started = Instant::now();
    let now_ms = || chrono::Utc::now().timestamp_millis();
    let mut sent = Totals::default();

    if let Some(history) = plan.backfill {
        let count = (history.secs() as f64 * plan.rate) as u64;
        let end = now_ms();
        let begin = end - history.millis();
        let mut batch = Vec::with_capacity(2_000);
        for i in 0..count {
            let at = Timestamp(begin + (i as f64 * history.millis() as f64 / count.max(1) as f64) as i64);
            let active = active(&plan.injections, Span::from_secs((at.millis() - begin) / 1000));
            batch.push(config.upload(&mut model, plan.users, at, &active, &mut sent));
            if batch.len() == 2_000 || i + 1 == count {
                post(&http, &plan, &mut batch, &mut sent).await?;
            }
        }
        println!(
            "backfilled {} uploads over {history} ({} treatment, {} stored, {} duplicates) in {:.1?}",
            sent.uploads,
            sent.treatment,
            sent.stored,
            sent.duplicates,
            started.elapsed()
        );
        return Ok(());
    }

    let mut batch = Vec::new();
    let (mut last_flush, mut last_poll, mut last_report) = (Instant::now(), Instant::now(), Instant::now());
    let mut generated = 0u64;
    loop {
        let elapsed = started.elapsed();
        if plan.duration.is_some_and(|d| elapsed.as_secs() as i64 >= d.secs()) {
            break;
        }
        let due = (elapsed.as_secs_f64() * plan.rate) as u64;
        let active = active(&plan.injections, Span::from_secs(elapsed.as_secs() as i64));
        while generated < due {
            generated += 1;
            batch.push(config.upload(&mut model, plan.users, Timestamp(now_ms()), &active, &mut sent));
        }
        if !batch.is_empty() && (batch.len() >= 500 || last_flush.elapsed() >= Duration::from_millis(250)) {
            post(&http, &plan, &mut batch, &mut sent).await?;
            last_flush = Instant::now();
        }
        if last_poll.elapsed() >= Duration::from_millis(500) {
            config.refresh(&http, &plan).await?;
            last_poll = Instant::now();
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            println!(
                "{:>6.0}s  {} uploads sent ({} treatment, {} stored)  flag {}  {}",
                elapsed.as_secs_f64(),
                sent.uploads,
                sent.treatment,
                sent.stored,
                config.served(),
                if active.is_empty() { String::new() } else { format!("regression active: {active:?}") }
            );
            last_report = Instant::now();
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    post(&http, &plan, &mut batch, &mut sent).await?;
    println!(
        "sent {} uploads ({} treatment, {} stored, {} duplicates) in {:.0?}",
        sent.uploads,
        sent.treatment,
        sent.stored,
        sent.duplicates,
        started.elapsed()
    );
    Ok(())
}

#[derive(Default)]
struct Totals {
    uploads: u64,
    treatment: u64,
    stored: u64,
    duplicates: u64,
}

fn active(injections: &[Injection], elapsed: Span) -> Vec<Regression> {
    injections.iter().filter(|i| i.after <= elapsed).map(|i| i.regression).collect()
}

/// The flag as last fetched, with its ETag for cheap polling.
struct Config {
    flag: FlagConfig,
    etag: String,
}

impl Config {
    async fn fetch(http: &reqwest::Client, plan: &Plan) -> anyhow::Result<Config> {
        let response = http.get(format!("{}/api/v1/flags/{}", plan.url, plan.flag)).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "Rampart at {} does not serve flag `{}` ({})",
            plan.url,
            plan.flag,
            response.status()
        );
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        Ok(Config { flag: response.json().await?, etag })
    }

    async fn refresh(&mut self, http: &reqwest::Client, plan: &Plan) -> anyhow::Result<()> {
        let response = http.get(format!("{}/api/v1/flags/{}", plan.url, plan.flag)).header("if-none-match", &self.etag).send().await?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        anyhow::ensure!(response.status().is_success(), "flag config: {}", response.status());
        self.etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        self.flag = response.json().await?;
        println!("flag changed: now {}", self.served());
        Ok(())
    }

    fn served(&self) -> StageFlag {
        self.flag.served()
    }

    fn upload(&self, model: &mut Model, users: u64, at: Timestamp, active: &[Regression], sent: &mut Totals) -> Value {
        let unit = model.unit(users);
        let on = bucketing::evaluate(self.served(), &self.flag.group, &unit).enabled;
        let variant = if on { Variant::Treatment } else { Variant::Control };
        sent.uploads += 1;
        sent.treatment += u64::from(on);
        let mut event = model.event(at, variant, active);
        event["flag"] = json!(self.flag.key);
        event["unit"] = json!(unit);
        event
    }
}

async fn post(http: &reqwest::Client, plan: &Plan, batch: &mut Vec<Value>, totals: &mut Totals) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let body: String = batch.iter().map(|e| format!("{e}\n")).collect();
    let response = http.post(format!("{}/api/v1/events", plan.url)).body(body).send().await?;
    let status = response.status();
    let report: Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "Rampart refused the batch ({status}): {report}");
    totals.stored += report["accepted"].as_u64().unwrap_or(0);
    totals.duplicates += report["duplicates"].as_u64().unwrap_or(0);
    if report["rejected"].as_u64().unwrap_or(0) > 0 {
        eprintln!("some events were rejected: {}", report["errors"]);
    }
    batch.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::domain::event::parse_value;
    use app::domain::stats::Stats;

    fn arm(variant: Variant, regressions: &[Regression]) -> Stats {
        let mut model = Model::new(7, 1);
        let mut stats = Stats::default();
        for i in 0..20_000 {
            stats.add(&parse_value(&model.event(Timestamp(1_700_000_000_000 + i), variant, regressions)).unwrap());
        }
        stats
    }

    #[test]
    fn async_uses_far_less_memory_and_time_than_sync() {
        let (sync, r#async) = (arm(Variant::Control, &[]), arm(Variant::Treatment, &[]));
        let memory_cut = 1.0 - r#async.memory_mean_mb().unwrap() / sync.memory_mean_mb().unwrap();
        let latency_cut = 1.0 - r#async.latency.quantile(0.5).unwrap() / sync.latency.quantile(0.5).unwrap();
        assert!((0.75..0.95).contains(&memory_cut), "memory −{:.0}%", memory_cut * 100.0);
        assert!((0.3..0.55).contains(&latency_cut), "latency −{:.0}%", latency_cut * 100.0);
        assert!(sync.success_rate().unwrap() > 99.0 && r#async.success_rate().unwrap() > 99.5);
        assert!(r#async.timeout < sync.timeout / 5);
    }

    #[test]
    fn an_injected_error_spike_shows_in_the_treatment_arm_only() {
        let hurt = arm(Variant::Treatment, &[Regression::ErrorRate(20.0)]);
        assert!((18.0..23.0).contains(&hurt.error_rate().unwrap()), "{:?}", hurt.error_rate());
        assert!(arm(Variant::Control, &[Regression::ErrorRate(20.0)]).error_rate().unwrap() < 1.0);
        let critical = arm(Variant::Treatment, &[Regression::Critical(1.0)]);
        assert!(critical.critical > 100);
    }

    #[test]
    fn injections_are_read_from_the_command_line() {
        assert_eq!(
            Injection::parse("error=20%@30s"),
            Ok(Injection { regression: Regression::ErrorRate(20.0), after: Span::from_secs(30) })
        );
        assert_eq!(Injection::parse("latency=3x@2m").unwrap().regression, Regression::Latency(3.0));
        assert!(Injection::parse("latency=3@2m").unwrap_err().contains("KIND=AMOUNT@WHEN"));
        assert!(Injection::parse("error=5%@soon").is_err());
    }
}
