//! Metrics benchmark, one run on one machine:
//! - ingest rate over HTTP (NDJSON batches of 1,000 and 10,000, from one sender and from four
//!   at once) and through `rampart import`, each against a fair baseline run just before it:
//!   the same rows with binary `COPY` straight into their days' partitions (the format and
//!   tables the store writes), on as many connections at once as the path uses (one, four, or
//!   the importer's two), every path starting from empty tables; an HTTP path also beside the
//!   same batches copied each in a committed transaction of its own (what Postgres alone costs
//!   a path that acknowledges every batch durably); for two shapes of traffic: live (what the
//!   services send: the last ten minutes) and a 48-hour backfill (a log file from the past, ~70
//!   events a minute, so nearly every event opens rollup rows of its own);
//! - window query time (a stage's 48-hour gate window, and the guard loop's 5-minute window)
//!   over 1 M and then 10 M stored events;
//! - the gate window over HTTP as the control room asks for it, on the largest store: a server's
//!   first answer, warm and quiet (the baseline), and warm under concurrent ingest (p50, p99).
//!
//!   cargo xtask bench             (starts a private Postgres, or uses DATABASE_URL)
//!
//! Set RAMPART_BENCH_EVENTS to change the largest store size (default 10000000; 0 measures the
//! ingest alone), RAMPART_BENCH_RUNS for the runs of each ingest path (default 3; the median
//! counts), RAMPART_BENCH_BATCH=1000 (or 10000) to measure only the live batches of that size.

use app::domain::event::{Variant, parse_value};
use app::domain::stats::size_class_mb;
use app::domain::units::{Span, Timestamp};
use server::metrics::Metrics;
use server::simulate::{Model, Regression};
use server::store::{NewEvent, RollupFilter, Store};
use sqlx::PgPool;

mod support;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{authorized, bench_token, fresh_database, sized, spawn_rampart};

const SAMPLE: usize = 200_000;
/// HTTP ingest paths: (events per batch, senders posting at once).
const HTTP_PATHS: [(usize, usize); 4] = [(1_000, 1), (1_000, 4), (10_000, 1), (10_000, 4)];
const HOUR: i64 = 3_600_000;

fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask bench`");
    let largest: usize = std::env::var("RAMPART_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(sized(10_000_000, 20_000));
    let runs: usize = std::env::var("RAMPART_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(sized(3, 1));
    let only_batch: Option<usize> = std::env::var("RAMPART_BENCH_BATCH").ok().and_then(|v| v.parse().ok());
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (pool, bench_url) = server_rt.block_on(fresh_database(&url, "rampart_bench_metrics"));
    let now = chrono::Utc::now().timestamp_millis();
    let app_url = server_rt.block_on(spawn_rampart(pool.clone()));
    let store = Store::new(pool.clone());
    let metrics = Metrics::new(store.clone(), Arc::new(move || Timestamp(now)), Span::from_secs(90 * 86_400));

    let sample = sized(SAMPLE, 2_000);
    println!("# Metrics benchmark ({sample} events per ingest path)\n");
    let token = server_rt.block_on(bench_token(&pool));
    println!("## Ingest\n");
    println!(
        "| traffic | path | events/s | binary `COPY` into the partitions, as many connections, just before (events/s) | vs COPY \
         | the same batches by `COPY`, each committed (events/s) | vs batched COPY |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let shapes = [("live (the last 10 minutes)", 10 * 60_000), ("backfill (48 hours)", 48 * HOUR)];
    for (seed, (shape, span)) in shapes.into_iter().enumerate() {
        // The same rows for every path, 10% treatment.
        let mut model = Model::new(42 + seed as u64, 1);
        let events = generate(&mut model, sample, now - span, now);
        server_rt.block_on(store.ensure_partitions(events.iter().map(|e| Timestamp(e["timestamp"].as_i64().unwrap())))).unwrap();
        // Each path runs `runs` times from empty tables, each run right after a COPY of the
        // same rows, so both see the machine alike (on a shared machine its speed drifts); the
        // median of the runs' ratios counts.
        // The fair baseline of a path with `connections` connections: binary COPY straight into
        // the days' partitions, as the store writes, on as many connections at once.
        // A path with batches is also set beside the same batches copied each in a transaction
        // of its own, measured in the same run.
        let compare = |path: String, connections: usize, batches: Option<usize>, run: &dyn Fn() -> f64| {
            let mut runs: Vec<(f64, Option<f64>, f64)> = (0..runs)
                .map(|_| {
                    server_rt.block_on(empty(&pool));
                    let copy_rate = server_rt.block_on(copy(&pool, &events, connections, None));
                    let batched_rate = batches.map(|size| {
                        server_rt.block_on(empty(&pool));
                        server_rt.block_on(copy(&pool, &events, connections, Some(size)))
                    });
                    server_rt.block_on(empty(&pool));
                    (copy_rate, batched_rate, run())
                })
                .collect();
            runs.sort_by(|a, b| (a.2 / a.0).total_cmp(&(b.2 / b.0)));
            eprintln!(
                "({shape}, {path}: {:.0?} events/s, after COPY at {:.0?}, batched COPY at {:.0?})",
                runs.iter().map(|r| r.2).collect::<Vec<_>>(),
                runs.iter().map(|r| r.0).collect::<Vec<_>>(),
                runs.iter().map(|r| r.1).collect::<Vec<_>>()
            );
            let (copy_rate, batched_rate, rate) = runs[runs.len() / 2];
            let batched = match batched_rate {
                Some(batched) => format!("{batched:.0} | {:.0}%", rate / batched * 100.0),
                None => "— | —".into(),
            };
            println!("| {shape} | {path} | {rate:.0} | {copy_rate:.0} | {:.0}% | {batched} |", rate / copy_rate * 100.0);
        };
        for (batch, senders) in HTTP_PATHS.into_iter().filter(|(b, _)| only_batch.is_none_or(|o| o == *b)) {
            let path = match senders {
                1 => format!("`POST /api/v1/events`, NDJSON batches of {batch}"),
                n => format!("`POST /api/v1/events`, NDJSON batches of {batch}, {n} senders at once"),
            };
            let bodies = ndjson_bodies(&events, batch, senders);
            compare(path, senders, Some(batch), &|| {
                // The request bodies are written before the clock starts, as the baseline's CSV
                // is; timed until the last reply, and the rollups have folded the last batch's
                // deltas in: all the work the batches caused.
                let bodies = bodies.clone();
                let started = Instant::now();
                client_rt.block_on(http_ingest(&app_url, bodies, events.len(), &token));
                server_rt.block_on(store.fold_rollups()).unwrap();
                events.len() as f64 / started.elapsed().as_secs_f64()
            });
        }
        if only_batch.is_none() {
            // The importer stores two batches at once.
            compare("`rampart import FILE`".into(), 2, None, &|| import(&bench_url, &events));
        }
        server_rt.block_on(empty(&pool));
        if only_batch.is_some() {
            break;
        }
    }

    if largest == 0 {
        return;
    }
    println!("\n## Window queries (median of 25)\n");
    println!("| stored events | 48 h gate window, both arms | 5 min guard window | 48 h, one provider × file type |");
    println!("|---:|---:|---:|---:|");
    let mut stored = 0;
    let mut model = Model::new(44, 3);
    for target in std::collections::BTreeSet::from([sized(1_000_000usize, 10_000), largest]) {
        server_rt.block_on(fill(&store, &mut model, target - stored, now));
        stored = target;
        let (gate, guard, filtered) = server_rt.block_on(query_times(&metrics, now));
        println!("| {stored} | {gate:.1} ms | {guard:.1} ms | {filtered:.1} ms |");
    }

    // The gate window as the control room asks for it, over HTTP, on the largest store.
    let requests = sized(200, 5);
    println!("\n## The 48-hour gate window over HTTP ({stored} stored events, {requests} requests each)\n");
    println!("| case | p50 | p99 | p50 vs quiet | p99 vs quiet | pending deltas (most seen) |");
    println!("|---|---:|---:|---:|---:|---:|");
    // A server started now on a pool of its own: none of the bench's warm connections and
    // prepared statements (its start opens a few of its own).
    let fresh = server_rt.block_on(async { spawn_rampart(PgPool::connect(&bench_url).await.unwrap()).await });
    let cases = client_rt.block_on(http_window_times(&bench_url, &fresh, &token, now, requests));
    let quiet = &cases[1];
    for case in &cases {
        if case.samples == 1 {
            println!("| {} | {:.1} ms (one) | — | {:.2}× | — | {} |", case.name, case.p50, case.p50 / quiet.p50, case.pending);
        } else {
            println!(
                "| {} | {:.1} ms | {:.1} ms | {:.2}× | {:.2}× | {} |",
                case.name,
                case.p50,
                case.p99,
                case.p50 / quiet.p50,
                case.p99 / quiet.p99,
                case.pending
            );
        }
    }
    server_rt.block_on(pool.close());
}

/// One case of [`http_window_times`]: its latencies' p50 and p99 in ms, and the most rollup
/// deltas seen pending while it ran.
struct WindowCase {
    name: &'static str,
    samples: usize,
    p50: f64,
    p99: f64,
    pending: i64,
}

/// `GET /api/v1/rollouts/1/metrics` for the 48 hours before `now`, as the control room's gates
/// ask for it, timed to the last byte: the first answer of a server started just now (`base`;
/// Postgres's own buffers stay warm: it is not restarted); `n` answers with the store folded
/// and no ingest (the baseline of the others, measured in the same run); and `n` answers while
/// one sender posts 1,000-event batches of the last minute back to back, so the reads
/// union pending deltas and share the machine with the ingest.
async fn http_window_times(database_url: &str, base: &str, token: &str, now: i64, n: usize) -> Vec<WindowCase> {
    // A connection of this runtime's own, to count the pending deltas.
    let pool = &PgPool::connect(database_url).await.unwrap();
    let http = authorized(token).build().unwrap();
    let url = format!("{base}/api/v1/rollouts/1/metrics?from={}&to={now}", now - 48 * HOUR);
    let pending = || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_rollup_deltas").fetch_one(pool).await.unwrap() };
    let timed = || async {
        let started = Instant::now();
        let response = http.get(&url).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap();
        started.elapsed()
    };
    let case = |name, mut times: Vec<Duration>, pending| {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        WindowCase { name, samples: times.len(), p50: at(0.5), p99: at(0.99), pending }
    };
    let first = timed().await;
    let cold = case("first answer of a server started just now, on a pool of its own", vec![first], pending().await);
    let mut quiet = Vec::new();
    for _ in 0..n {
        quiet.push(timed().await);
    }
    let quiet = case("warm, store folded, no ingest (baseline)", quiet, pending().await);

    // The batches are written on a thread of their own, so that the timed requests' runtime
    // only sends and receives.
    let (bodies, mut ready) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        let mut model = Model::new(45, 9);
        loop {
            let body: String = generate(&mut model, 1_000, now - 60_000, now).iter().map(|e| format!("{e}\n")).collect();
            if bodies.blocking_send(body).is_err() {
                return;
            }
        }
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (stop, url, http) = (stop.clone(), format!("{base}/api/v1/events"), http.clone());
        tokio::spawn(async move {
            let mut batches = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = ready.recv().await.expect("the writer thread runs");
                let response = http.post(&url).body(body).send().await.unwrap();
                assert!(response.status().is_success());
                batches += 1;
            }
            batches
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut busy, mut most) = (Vec::new(), 0);
    for _ in 0..n {
        busy.push(timed().await);
        most = most.max(pending().await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = sender.await.unwrap();
    assert!(batches > 0, "the ingest ran");
    vec![cold, quiet, case("warm, under ingest (1,000-event batches back to back)", busy, most)]
}

fn generate(model: &mut Model, n: usize, from: i64, to: i64) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let at = Timestamp(from + (i as i64 * (to - from)) / n as i64);
            let variant = if i % 10 == 0 { Variant::Treatment } else { Variant::Control };
            model.event(at, variant, &[] as &[Regression])
        })
        .collect()
}

/// The baseline: the same rows straight into their days' partitions with binary `COPY` (the
/// format and tables the store writes), split over `connections` connections at once as the
/// path's senders are; the rows are encoded before the clock starts. With `batches`, the rows
/// go as the path's batches do, dealt out to the connections alike: each batch a transaction of
/// its own, a `COPY` per day and a commit (what Postgres itself costs a path that acknowledges
/// each batch durably); without, each connection's share is one `COPY` per day, committed once.
async fn copy(pool: &PgPool, events: &[serde_json::Value], connections: usize, batches: Option<usize>) -> f64 {
    use server::store::copy::{BinaryRows, copy_in};
    type Days = std::collections::BTreeMap<String, BinaryRows>;
    let parsed: Vec<_> = events.iter().map(|e| parse_value(e).unwrap()).collect();
    let size = batches.unwrap_or(parsed.len().div_ceil(connections));
    // Per connection, its transactions; per transaction, its rows by day.
    let mut work: Vec<Vec<Days>> = (0..connections).map(|_| Vec::new()).collect();
    for (n, chunk) in parsed.chunks(size).enumerate() {
        let mut days = Days::new();
        for p in chunk {
            let day = chrono::DateTime::from_timestamp_millis(p.at.millis()).unwrap().format("events_%Y%m%d").to_string();
            days.entry(day)
                .or_insert_with(|| BinaryRows::new(14))
                .row()
                .int8(1)
                .timestamp(p.at)
                .text(&p.event_id)
                .int4(0)
                .text(p.variant.as_str())
                .text(p.outcome.as_str())
                .float8(p.latency_ms)
                .float8(p.memory_mb)
                .text(&p.provider)
                .text(&p.file_type)
                .int8(p.size_bytes as i64)
                .optional_text(p.error_kind.as_deref())
                .bool(p.critical)
                .optional_int8(None);
        }
        work[n % connections].push(days);
    }
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(pool.acquire().await.unwrap());
    }
    let started = Instant::now();
    let stored: u64 = futures_util::future::join_all(conns.iter_mut().zip(work).map(|(conn, transactions)| async move {
        let mut stored = 0;
        for days in transactions {
            let mut tx = sqlx::Acquire::begin(&mut **conn).await.unwrap();
            for (table, rows) in days {
                let statement = format!(
                    "COPY {table} (rollout_id, at, event_id, stage, variant, outcome, latency_ms, memory_mb, provider, file_type, \
                     size_bytes, error_kind, critical, unit_key) FROM STDIN WITH (FORMAT binary)"
                );
                stored += copy_in(&mut tx, &statement, rows).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        stored
    }))
    .await
    .into_iter()
    .sum();
    assert_eq!(stored as usize, events.len());
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// Forgets every stored event and rollup, and checkpoints, so every run starts alike (the first
/// change to each page after a checkpoint writes the whole page to the WAL).
async fn empty(pool: &PgPool) {
    sqlx::query("TRUNCATE events, event_rollups, event_rollups_by_arm, event_rollup_deltas").execute(pool).await.unwrap();
    sqlx::query("CHECKPOINT").execute(pool).await.unwrap();
}

/// The rows as NDJSON request bodies of `batch` events each, dealt out to `senders` senders.
fn ndjson_bodies(events: &[serde_json::Value], batch: usize, senders: usize) -> Vec<Vec<String>> {
    let mut dealt = vec![Vec::new(); senders];
    for (i, chunk) in events.chunks(batch).enumerate() {
        dealt[i % senders].push(chunk.iter().map(|e| format!("{e}\n")).collect());
    }
    dealt
}

/// Posts each sender's bodies from its own concurrent task (services run many instances),
/// each waiting for its reply before sending its next batch; all `expected` events must be
/// accepted.
async fn http_ingest(base: &str, bodies: Vec<Vec<String>>, expected: usize, token: &str) {
    let http = authorized(token).build().unwrap();
    let url = format!("{base}/api/v1/events");
    let mut tasks = tokio::task::JoinSet::new();
    for mine in bodies {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            let mut accepted = 0;
            for body in mine {
                let response = http.post(&url).body(body).send().await.unwrap();
                assert!(response.status().is_success());
                accepted += response.json::<serde_json::Value>().await.unwrap()["accepted"].as_u64().unwrap();
            }
            accepted
        });
    }
    let accepted: u64 = tasks.join_all().await.into_iter().sum();
    assert_eq!(accepted as usize, expected);
}

fn import(database_url: &str, events: &[serde_json::Value]) -> f64 {
    let path = std::env::temp_dir().join(format!("rampart-bench-{}.jsonl", std::process::id()));
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["import", path.to_str().unwrap()])
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} new events stored", events.len())));
    events.len() as f64 / elapsed.as_secs_f64()
}

/// Adds `n` more events over the last 48 hours straight through the store (the ingest path
/// without HTTP), in batches.
async fn fill(store: &Store, model: &mut Model, n: usize, now: i64) {
    let started = Instant::now();
    let sizes = [1, 10, 50, 100];
    let mut done = 0;
    while done < n {
        let batch: Vec<NewEvent> = generate(model, 10_000.min(n - done), now - 48 * HOUR, now)
            .into_iter()
            .map(|v| {
                let event = parse_value(&v).unwrap();
                let size_class_mb = size_class_mb(event.size_bytes, &sizes) as i32;
                NewEvent { event, stage: 0, size_class_mb }
            })
            .collect();
        done += batch.len();
        store.ingest(1, batch).await.unwrap();
    }
    store.fold_rollups().await.unwrap();
    eprintln!("(stored {n} more events in {:.0?})", started.elapsed());
}

async fn query_times(metrics: &Metrics, now: i64) -> (f64, f64, f64) {
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    let (mut gate, mut guard, mut filtered) = (Vec::new(), Vec::new(), Vec::new());
    let filter = RollupFilter { provider: Some("kimi".into()), file_type: Some("csv".into()), ..Default::default() };
    for _ in 0..25 {
        let t = Instant::now();
        let w = metrics.window(1, Timestamp(now - 48 * HOUR), Timestamp(now), &RollupFilter::default()).await.unwrap();
        gate.push(t.elapsed());
        assert!(w.control.count > 0 && w.treatment.count > 0);
        let t = Instant::now();
        metrics.window(1, Timestamp(now - 5 * 60_000), Timestamp(now), &RollupFilter::default()).await.unwrap();
        guard.push(t.elapsed());
        let t = Instant::now();
        metrics.window(1, Timestamp(now - 48 * HOUR), Timestamp(now), &filter).await.unwrap();
        filtered.push(t.elapsed());
    }
    (median(gate), median(guard), median(filtered))
}
