//! `rampart import` memory on files of growing size, one run: the peak resident memory of the
//! import process on a 100 MB file (the baseline) and on a 1 GB file, and their ratio, for a
//! file in shuffled time order and one in time order. Streaming means the ratio stays near 1.
//!
//!   cargo xtask bench             (starts a private Postgres, or uses DATABASE_URL)
//!
//! Set RAMPART_BENCH_IMPORT_MB to change the large file's size (default 1024).

use app::domain::event::Variant;
use app::domain::units::Timestamp;
use server::simulate::{Model, Regression};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::{fresh_database, sized};

fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask bench`");
    let large_mb: u64 = std::env::var("RAMPART_BENCH_IMPORT_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(sized(1024, 4));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (pool, db_url) = rt.block_on(fresh_database(&url, "rampart_bench_import"));
    rt.block_on(async {
        // The rollout the events belong to, as on a first start.
        let (plan, source) = server::startup::load_plan(None).unwrap();
        server::startup::ensure_rollout(&server::store::Store::new(pool.clone()), &plan, &source).await.unwrap();
        pool.close().await;
    });

    println!("# Import memory (`rampart import FILE`)\n");
    println!("| file | order | events | time | events/s | peak RSS | vs the 100 MB file of its order |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let dir = std::env::temp_dir();
    // Every file's events are new (a seed of its own): each import stores all of them.
    for (order, seeds) in [(Order::Shuffled, [1u64, 2]), (Order::Time, [3, 4])] {
        let mut baseline = None;
        for (seed, mb) in seeds.into_iter().zip([sized(100u64, 2), large_mb]) {
            let path = dir.join(format!("rampart-bench-import-{mb}mb-{}.jsonl", std::process::id()));
            let events = write_file(&path, mb * 1_000_000, seed, order);
            let (elapsed, peak_kb) = import(&db_url, &path, events);
            let _ = std::fs::remove_file(&path);
            let base = *baseline.get_or_insert(peak_kb);
            println!(
                "| {mb} MB | {} | {events} | {:.0} s | {:.0} | {:.1} MB | {:.2}× |",
                order.name(),
                elapsed.as_secs_f64(),
                events as f64 / elapsed.as_secs_f64(),
                peak_kb as f64 / 1024.0,
                peak_kb as f64 / base as f64
            );
        }
    }
}

/// The order of a file's lines in time.
#[derive(Clone, Copy)]
enum Order {
    /// Each line's moment drawn uniformly over the 48 hours, as a file concatenated from many
    /// hosts' logs arrives: every batch touches thousands of minutes (the hard case).
    Shuffled,
    /// Oldest first, as one host's log is: a batch touches a few minutes.
    Time,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Shuffled => "shuffled",
            Order::Time => "time",
        }
    }
}

/// Writes simulated upload events (48 hours ending now, 10% treatment) until `bytes` are
/// written, in `order`; returns how many.
fn write_file(path: &Path, bytes: u64, seed: u64, order: Order) -> u64 {
    let mut model = Model::new(seed, seed);
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut written, mut n) = (0u64, 0u64);
    let now = chrono::Utc::now().timestamp_millis();
    const SPAN_MS: u64 = 48 * 3_600_000;
    // A line is about 190 bytes: a time-ordered file steps through the 48 hours at that pace.
    let step = (SPAN_MS / (bytes / 190).max(1)).max(1);
    while written < bytes {
        let offset = match order {
            Order::Shuffled => splitmix(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % SPAN_MS,
            Order::Time => (n * step).min(SPAN_MS - 1),
        };
        let at = Timestamp(now - SPAN_MS as i64 + offset as i64);
        let variant = if n % 10 == 0 { Variant::Treatment } else { Variant::Control };
        let line = model.event(at, variant, &[] as &[Regression]).to_string();
        out.write_all(line.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
        written += line.len() as u64 + 1;
        n += 1;
    }
    out.flush().unwrap();
    n
}

/// Runs the import, samples its peak resident set (VmHWM) until it exits, and checks that it
/// stored all `events`.
fn import(database_url: &str, path: &Path, events: u64) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["import", path.to_str().unwrap()])
        .env("DATABASE_URL", database_url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read the report as it comes, so a full pipe never stalls the import.
    let mut stdout = child.stdout.take().unwrap();
    let report = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            let elapsed = started.elapsed();
            assert!(status.success(), "the import failed");
            let out = report.join().unwrap();
            assert!(out.contains(&format!("{events} new events stored")), "not every event was stored: {out}");
            return (elapsed, peak_kb);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SplitMix64's finaliser: a well-spread hash of `x`, the file's only randomness.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
