//! A gate over a whole stage from Prometheus: how long one pull of a plan's `[metrics_source]`
//! takes over a 7-day stage scraped every 15 s (the samples written into Prometheus's storage
//! with `promtool tsdb create-blocks-from openmetrics`, then served by Debian's `prometheus`).
//! Beside it, in the same run, the baseline: the same queries fetched over HTTP and their bodies
//! read, with nothing parsed — what any client of Prometheus pays for these samples — and the
//! same pull keeping the matrix's cells too (`matrix_labels`; every series names one cell).
//!
//!   cargo xtask bench     (or: cargo bench -p server --bench prometheus)

use app::domain::source::PrometheusSource;
use app::domain::units::Timestamp;
use server::prometheus::Prometheus;
use std::fmt::Write as _;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod support;
use support::sized;

const SCRAPE_SECS: i64 = 15;
const ARMS: [&str; 2] = ["treatment", "control"];
const OUTCOMES: [&str; 3] = ["success", "error", "timeout"];
const BOUNDS: [&str; 3] = ["0.1", "0.5", "+Inf"];
const MEMORY_BOUNDS: [&str; 3] = ["10", "100", "+Inf"];

/// The matrix cell every series is labelled with.
const CELL: &str = r#"file_type="csv",size_mb="10",provider="kimi""#;

/// OpenMetrics text of `days` of samples ending at `end` (seconds), every series a counter that
/// grows as a service at `per_scrape` uploads per 15 s would (one upload in a hundred failing).
fn openmetrics(days: i64, end: i64, per_scrape: u64) -> String {
    let points = days * 86_400 / SCRAPE_SECS;
    let start = end - points * SCRAPE_SECS;
    let mut text = String::with_capacity((points as usize) * 20 * 70);
    let mut family = |name: &str, series: &[(String, u64)]| {
        let _ = writeln!(text, "# TYPE {name} unknown");
        for (labels, share) in series {
            for i in 1..=points {
                let value = i as u64 * per_scrape * share / 100;
                let _ = writeln!(text, "{name}{{{labels}}} {value} {}", start + i * SCRAPE_SECS);
            }
        }
    };
    let by = |label: &str, values: &[&str], shares: &[u64]| -> Vec<(String, u64)> {
        ARMS.iter()
            .flat_map(|arm| {
                values.iter().zip(shares).map(move |(v, s)| (format!("arm=\"{arm}\",job=\"upload\",{CELL},{label}=\"{v}\""), *s))
            })
            .collect()
    };
    family("uploads_total", &by("outcome", &OUTCOMES, &[99, 1, 0]));
    family("upload_seconds_bucket", &by("le", &BOUNDS, &[80, 99, 100]));
    family("upload_memory_megabytes_bucket", &by("le", &MEMORY_BOUNDS, &[90, 100, 100]));
    let per_arm = |share: u64| ARMS.iter().map(|arm| (format!("arm=\"{arm}\",job=\"upload\",{CELL}"), share)).collect::<Vec<_>>();
    family("critical_total", &per_arm(0));
    // The sums (seconds, megabytes): 0.05 s and 5 MB an upload, in whole units as counters go.
    family("upload_seconds_sum", &per_arm(5));
    family("upload_memory_megabytes_sum", &per_arm(500));
    text.push_str("# EOF\n");
    text
}

struct Server(Child, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn main() {
    let days = sized(7, 1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let dir = std::env::temp_dir().join(format!("rampart-bench-prometheus-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let started = Instant::now();
    let input = dir.join("samples.om");
    std::fs::write(&input, openmetrics(days, now - 60, 50)).unwrap();
    let status = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("promtool runs (cargo xtask test installs Debian's prometheus)");
    assert!(status.success(), "promtool failed");
    let written = started.elapsed();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.join("prometheus.yml"), "global:\n  scrape_interval: 15s\n").unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=30d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=error")
        .spawn()
        .expect("prometheus starts");
    let _server = Server(child, dir.clone());
    let base = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let ready = Instant::now();
        while http.get(format!("{base}/-/ready")).send().await.map(|r| r.status().is_success()).ok() != Some(true) {
            assert!(ready.elapsed() < Duration::from_secs(120), "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let source: PrometheusSource = serde_json::from_value(serde_json::json!({
            "prometheus": base,
            "uploads": r#"uploads_total{job="upload"}"#,
            "latency": r#"upload_seconds{job="upload"}"#,
            "memory": r#"upload_memory_megabytes{job="upload"}"#,
            "memory_unit": "megabytes",
            "critical": "critical_total",
        }))
        .unwrap();
        let to = Timestamp((now - 30) * 1000);
        let from = Timestamp(to.millis() - days * 86_400_000 + 120_000);
        let range = to.since(Timestamp(from.millis() - source.lookback().millis()));
        let rounds = sized(5, 2);
        let with_cells = PrometheusSource { matrix_labels: Some(Default::default()), ..source.clone() };
        let (mut bare, mut pulled, mut celled) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0usize;
        for _ in 0..rounds {
            // The baseline: the same queries, at once, their bodies read and nothing more.
            let t = Instant::now();
            let sizes = futures_util::future::join_all(source.queries().iter().map(|q| {
                let request = http
                    .get(format!("{base}/api/v1/query"))
                    .query(&[("query", q.text(range)), ("time", format!("{}", to.millis() / 1000))]);
                async move { request.send().await.unwrap().bytes().await.unwrap().len() }
            }))
            .await;
            bare.push(t.elapsed());
            bytes = sizes.iter().sum();
            let t = Instant::now();
            let evidence = Prometheus::default().query_all(&source, from, to, to, [true, true]).await;
            pulled.push(t.elapsed());
            assert_eq!(evidence.problem, None, "{:?}", evidence.problem);
            assert!(evidence.rows.treatment().count() > 0);
            // The same pull keeping each cell's totals too (the matrix's).
            let t = Instant::now();
            let cells = Prometheus::default().query_all(&with_cells, from, to, to, [true, true]).await;
            celled.push(t.elapsed());
            assert_eq!(cells.cells.len(), 1);
            assert_eq!(cells.cells[0].arms[0].count(), evidence.rows.treatment().count());
        }
        // A kept span's next pull: the guard's every few seconds, reading only what is new
        // (here nothing: the samples end a minute before `to`) over the whole week's tally.
        let puller = Prometheus::default();
        let first = puller.pull(1, 1, &source, from, to, to, [true, true]).await;
        let mut grown = Vec::new();
        for round in 1..=rounds as i64 {
            let later = Timestamp(to.millis() + round * 10_000);
            let t = Instant::now();
            let again = puller.pull(1, 1, &source, from, later, later, [true, true]).await;
            grown.push(t.elapsed());
            assert_eq!(again.rows.treatment().count(), first.rows.treatment().count());
        }
        for durations in [&mut grown, &mut bare, &mut pulled, &mut celled] {
            durations.sort();
        }
        let median = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1e3;
        let samples = 24 * days * 86_400 / SCRAPE_SECS;
        println!("# A gate's pull from Prometheus\n");
        println!(
            "{days}-day stage scraped every {SCRAPE_SECS} s: {} queries, {samples} raw samples, {:.1} MB of answers \
             ({:.0} s to write the samples with promtool). Median of {rounds}: Rampart's pull **{:.0} ms** (target < 1 s); \
             the same queries fetched and their bodies read, nothing parsed, {:.0} ms: **{:.2}×**. \
             The next pull of the kept span (only the samples since): **{:.0} ms**. \
             The first pull keeping the matrix's cells too: **{:.0} ms** ({:.2}× the pull without).",
            source.queries().len(),
            bytes as f64 / 1e6,
            written.as_secs_f64(),
            median(&pulled),
            median(&bare),
            median(&pulled) / median(&bare),
            median(&grown),
            median(&celled),
            median(&celled) / median(&pulled)
        );
    });
}
