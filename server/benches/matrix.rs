//! The end-to-end matrix's read, one run on one machine: a last stage that has run for a day and
//! for a week with every cell of the default plan's matrix (6 file types × 4 sizes × 2
//! providers) seen on both arms every minute — the most rows such a stage can have, one per cell,
//! arm and minute, about a million a week — stored through the store's own ingest.
//!
//! Measured (median of 25): the stage's totals by cell as the control room, `/metrics` and the
//! reports read them (`Store::rollup_totals`: the whole hours from the hourly rows, the ragged
//! ends from the minute rows), against the same totals summed from every minute row as the
//! read was before migration 0022 (`Store::rollups`, merged by cell) — the baseline, in the
//! same run — and beside the by-arm minutes the gates read of the same span.
//!
//!   cargo xtask bench             (every bench; starts a private Postgres, or uses DATABASE_URL)
//!   cargo bench -p server --bench matrix   (with DATABASE_URL set)

use app::domain::event::{Variant, parse_value};
use app::domain::stats::{Stats, size_class_mb};
use app::domain::units::{Span, Timestamp};
use server::metrics::Metrics;
use server::store::{CellKey, NewEvent, RollupFilter, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::{fresh_database, sized};

const MINUTE: i64 = 60_000;
const DAY: i64 = 1_440 * MINUTE;
const STAGE: i32 = 4;
const SIZES_MB: [u32; 4] = [1, 10, 50, 100];

fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask bench`");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (pool, _) = rt.block_on(fresh_database(&url, "rampart_bench_matrix"));
    let store = Store::new(pool.clone());
    // Rollout 1; its hourly rows complete from the start, as for any rollout created after 0022.
    rt.block_on(async {
        sqlx::raw_sql(
            "INSERT INTO plans (key, name, source, definition) VALUES ('bench', 'bench', '', '{}');
             INSERT INTO rollouts (plan_id, flag_key, stage, status) VALUES (1, 'bench', 4, 'running');",
        )
        .execute(&pool)
        .await
        .unwrap();
    });
    let file_types: &[&str] = sized(&["text", "json", "csv", "markdown", "python", "binary"], &["text", "csv"]);
    let providers: &[&str] = &["kimi", "glm"];
    let cells = file_types.len() * SIZES_MB.len() * providers.len();
    // The stage ends now, in the middle of a minute, and began in the middle of an hour.
    let now = chrono::Utc::now().timestamp_millis();
    let days: &[i64] = sized(&[1, 7], &[1]);
    let longest = *days.last().unwrap();
    let first_minute = now.div_euclid(MINUTE) * MINUTE - longest * DAY - 37 * MINUTE;
    let minutes = ((now - first_minute) / MINUTE + 1) as usize;
    let metrics = Metrics::new(store.clone(), Arc::new(move || Timestamp(now)), Span::from_secs(90 * 86_400));

    let started = Instant::now();
    rt.block_on(store.ensure_partitions((0..=longest + 1).map(|d| Timestamp(first_minute + d * DAY)))).unwrap();
    let mut batch = Vec::with_capacity(10_000);
    let mut stored = 0usize;
    for minute in 0..minutes {
        for (cell, (file_type, size_mb, provider)) in
            file_types.iter().flat_map(|f| SIZES_MB.iter().flat_map(move |s| providers.iter().map(move |p| (f, s, p)))).enumerate()
        {
            for (arm, variant) in ["async", "sync"].into_iter().enumerate() {
                let value = serde_json::json!({
                    "timestamp": first_minute + minute as i64 * MINUTE + (cell * 2 + arm) as i64 * 100,
                    "event_id": format!("{minute}-{cell}-{arm}"),
                    "variant": variant,
                    "outcome": if (minute + cell) % 50 == 0 { "error" } else { "success" },
                    "latency_ms": 200.0 + ((minute * 7 + cell * 13) % 900) as f64,
                    "memory_mb": 40.0 + (cell % 7) as f64,
                    "provider": provider,
                    "file_type": file_type,
                    "size_bytes": u64::from(*size_mb) * 1_048_576 - 1,
                });
                let event = parse_value(&value).unwrap();
                let size_class_mb = size_class_mb(event.size_bytes, &SIZES_MB) as i32;
                batch.push(NewEvent { event, stage: STAGE, size_class_mb });
                if batch.len() == 10_000 {
                    stored += rt.block_on(store.ingest(1, std::mem::take(&mut batch))).unwrap().accepted as usize;
                }
            }
        }
    }
    stored += rt.block_on(store.ingest(1, batch)).unwrap().accepted as usize;
    rt.block_on(store.fold_rollups()).unwrap();
    rt.block_on(sqlx::query("VACUUM ANALYZE").execute(&pool)).unwrap();
    eprintln!("(stored {stored} events, {cells} cells × 2 arms × {minutes} minutes, in {:.0?})", started.elapsed());

    println!("# The end-to-end matrix's read ({cells} cells, both arms every minute; median of 25)\n");
    println!(
        "| stage so far | minute rows | totals by cell (hourly rows + ends) | every minute row, merged by cell (before 0022) | vs before | the gates' by-arm minutes |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let filter = RollupFilter { stage: Some(STAGE), ..Default::default() };
    for &d in days {
        let (from, to) = (Timestamp(now - d * DAY - 37 * MINUTE), Timestamp(now));
        let (mut totals, mut before, mut by_arm) = (Vec::new(), Vec::new(), Vec::new());
        let mut rows = 0;
        for _ in 0..25 {
            let t = Instant::now();
            let read = rt.block_on(store.rollup_totals(1, from, to, &filter)).unwrap();
            totals.push(t.elapsed());
            let t = Instant::now();
            let minute_rows = rt.block_on(store.rollups(1, from, to, &filter)).unwrap();
            rows = minute_rows.len();
            let mut merged: HashMap<CellKey, Stats> = HashMap::new();
            for (k, s) in minute_rows {
                let key = CellKey {
                    stage: k.stage,
                    variant: k.variant,
                    provider: k.provider,
                    file_type: k.file_type,
                    size_class_mb: k.size_class_mb,
                };
                merged.entry(key).or_default().merge(&s);
            }
            before.push(t.elapsed());
            let t = Instant::now();
            let minutes = rt.block_on(metrics.stage_minutes(1, STAGE, from, to)).unwrap();
            by_arm.push(t.elapsed());
            // Both reads count the same uploads in every cell.
            assert_eq!(read.len(), 2 * cells);
            for (key, stats) in &read {
                assert_eq!(stats.count(), merged[key].count(), "{key:?}");
            }
            assert_eq!(
                minutes.treatment.iter().map(|(_, s)| s.count()).sum::<u64>(),
                read.iter().filter(|(k, _)| k.variant == Variant::Treatment).map(|(_, s)| s.count()).sum::<u64>()
            );
        }
        let (totals, before, by_arm) = (median(totals), median(before), median(by_arm));
        println!(
            "| {d} day{} and 37 minutes | {rows} | {totals:.1} ms | {before:.1} ms | **{:.1}×** faster | {by_arm:.1} ms |",
            if d == 1 { "" } else { "s" },
            before / totals
        );
    }
    rt.block_on(pool.close());
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}
