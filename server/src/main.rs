//! The `rampart` command: serve (the default), check plan files, migrate.

use clap::Parser;
use server::config::{Cli, CliCommand, FlagCommand, PlanCommand, SecretsCommand, ServeConfig, UsersCommand};
use server::db;
use server::explain::Recomputed;
use server::startup::{self, load_plan};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let logs =
        tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")));
    // `json`: one object per line, with the request's or guard tick's span, for a log pipeline.
    match std::env::var("RAMPART_LOG_FORMAT").as_deref() {
        Err(_) | Ok("" | "text") => logs.init(),
        Ok("json") => logs.json().with_current_span(true).with_span_list(false).init(),
        Ok(other) => {
            eprintln!("error: RAMPART_LOG_FORMAT is `{other}`; it is `text` (the default) or `json`");
            return ExitCode::FAILURE;
        }
    }
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or_else(|| CliCommand::Serve(ServeConfig::default())) {
        CliCommand::Serve(config) => serve(config).await,
        CliCommand::Plan { command: PlanCommand::Check { files, live } } => return check_plans(&files, live).await,
        CliCommand::Flag { command: FlagCommand::Eval { flag, units, database } } => eval_flag(&flag, &units, &database).await,
        CliCommand::Import { file, retention_days, database } => import(&file, retention_days, &database).await,
        CliCommand::Explain { rollout, entry, database } => match explain(rollout, entry, &database).await {
            Ok(Recomputed::Same) => Ok(()),
            Ok(Recomputed::Different) => return ExitCode::FAILURE,
            Ok(Recomputed::Unavailable) => return ExitCode::from(2),
            Err(e) => Err(e),
        },
        CliCommand::Backtest { rollout, plan, database } => backtest(rollout, plan.as_deref(), &database).await,
        CliCommand::Secrets { command: SecretsCommand::Reseal { secret_keys, database } } => reseal(&secret_keys, &database).await,
        CliCommand::Users { command: UsersCommand::SetupLink { name, database } } => setup_link(&name, &database).await,
        CliCommand::TestResults { file, suite, rollout, stage, link, url, token, dry_run } => {
            if !dry_run && token.is_none() {
                eprintln!("error: set RAMPART_TOKEN (or --token) to send the report, or pass --dry-run to only read it");
                return ExitCode::FAILURE;
            }
            let upload = Upload { rollout, suite, stage, link, url, token: token.filter(|_| !dry_run) };
            test_results(&file, upload).await
        }
        CliCommand::Simulate { url, flag, token, rate, users, duration, backfill, injections, seed } => {
            let url = url.trim_end_matches('/').to_string();
            server::simulate::run(server::simulate::Plan { url, flag, token, rate, users, duration, backfill, injections, seed }).await
        }
        CliCommand::Migrate(config) => match db::connect(&config).await {
            Ok(database) => {
                println!("migrations applied");
                database.shutdown().await;
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Every setting is checked before a database is started or touched, so a typo fails fast.
    let config = startup::check_config(config)?;
    let database = db::connect(&config.database).await?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let result = match startup::build(&config, listener, database.pool.clone(), server::clock::system_clock()).await {
        Ok(app) => {
            tracing::info!("Rampart is serving on http://{}", app.local_addr());
            app.run_until_stopped(startup::shutdown_signal()).await.map_err(Into::into)
        }
        Err(e) => Err(e),
    };
    // A request still holding a connection (a query stuck on a lock) must not keep the process
    // alive past the shutdown limit: the pool's close waits for every connection.
    if tokio::time::timeout(startup::SHUTDOWN_LIMIT, database.shutdown()).await.is_err() {
        tracing::warn!(limit = ?startup::SHUTDOWN_LIMIT, "connections still in use at the shutdown limit; exiting anyway");
    }
    result
}

/// Where `rampart test-results` sends a report; `token: None` sends nothing (a dry run).
struct Upload {
    rollout: i64,
    suite: Option<String>,
    stage: Option<u32>,
    link: Option<String>,
    url: String,
    token: Option<secrecy::SecretString>,
}

/// Reads a JUnit report, prints what it says, and (unless a dry run) posts it as it is.
async fn test_results(file: &std::path::Path, upload: Upload) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use secrecy::ExposeSecret;
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let run =
        server::junit::parse_bytes(&body).map_err(|e| anyhow::anyhow!("{}:{}:{}: {}", file.display(), e.line, e.column, e.message))?;
    let seconds = run.duration_ms.map_or(String::new(), |ms| format!(" in {:.1} s", ms as f64 / 1000.0));
    println!(
        "{}: {} tests: {} passed ({} on a retry), {} failed, {} skipped{seconds}",
        file.display(),
        run.tests(),
        run.passed,
        run.flaky,
        run.failed,
        run.skipped
    );
    for failure in &run.failures {
        let first_line = failure.message.lines().next().unwrap_or("");
        let case = if failure.classname.is_empty() { failure.name.clone() } else { format!("{} {}", failure.classname, failure.name) };
        println!("  {} {case}: {first_line}", failure.kind);
    }
    let Some(token) = upload.token else { return Ok(()) };
    let mut query: Vec<(&str, String)> = Vec::new();
    query.extend(upload.suite.map(|s| ("suite", s)));
    query.extend(upload.stage.map(|s| ("stage", s.to_string())));
    query.extend(upload.link.map(|l| ("url", l)));
    let endpoint = format!("{}/api/v1/rollouts/{}/test-runs", upload.url.trim_end_matches('/'), upload.rollout);
    let response = reqwest::Client::new()
        .post(&endpoint)
        .query(&query)
        .bearer_auth(token.expose_secret())
        .header(reqwest::header::CONTENT_TYPE, "application/xml")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "{endpoint} refused the report ({status}): {}",
        answer["message"].as_str().unwrap_or("no message")
    );
    println!("recorded as run {} of “{}” for stage {}", answer["id"], answer["suite"].as_str().unwrap_or("?"), answer["stage"]);
    Ok(())
}

/// Prints what each unit gets, bucketed exactly as the server does.
async fn eval_flag(flag: &str, units: &[String], config: &server::config::DatabaseConfig) -> anyhow::Result<()> {
    let database = db::connect(config).await?;
    let configs = server::store::Store::new(database.pool.clone()).flag_configs(Some(flag)).await;
    database.shutdown().await;
    let config = configs?.pop().ok_or_else(|| anyhow::anyhow!("no flag `{flag}` in this Rampart"))?;
    println!(
        "{}: {} (config {})",
        config.key,
        if config.enabled { format!("on for {}%", config.percentage) } else { "off".to_string() },
        config.config_version
    );
    println!("{:<32} {:>6}  {:<9} enabled", "unit", "bucket", "variant");
    for unit in units {
        let result = app::domain::bucketing::evaluate(config.served(), &config.group, unit);
        println!("{unit:<32} {:>6}  {:<9} {}", result.bucket, result.variant(), result.enabled);
    }
    Ok(())
}

/// The database with a store and a metrics reader over it, for commands that only read
/// evidence (nothing is ingested, so no retention applies).
async fn reader(config: &server::config::DatabaseConfig) -> anyhow::Result<(db::Database, server::store::Store, server::metrics::Metrics)> {
    let database = db::connect(config).await?;
    let store = server::store::Store::new(database.pool.clone());
    let allowed = server::prometheus::Origins::from_env().map_err(anyhow::Error::msg)?;
    let metrics = server::metrics::Metrics::new(store.clone(), server::clock::system_clock(), app::domain::units::Span::ZERO)
        .reading_prometheus(allowed);
    Ok((database, store, metrics))
}

/// Prints the recomputation of an automatic decision, and how it came out.
async fn explain(rollout: i64, entry: i64, config: &server::config::DatabaseConfig) -> anyhow::Result<Recomputed> {
    let (database, store, metrics) = reader(config).await?;
    let result = server::explain::explain(&store, &metrics, rollout, entry).await;
    database.shutdown().await;
    let explanation = result?;
    print!("{}", explanation.text);
    Ok(explanation.outcome)
}

/// Prints a one-time set-password link for a person.
async fn setup_link(name: &str, config: &server::config::DatabaseConfig) -> anyhow::Result<()> {
    let database = db::connect(config).await?;
    let store = server::store::Store::new(database.pool.clone());
    let auth = server::auth::Auth::new(store, server::clock::system_clock(), app::domain::units::Span::from_secs(3600));
    let result = auth.new_setup_link(name).await;
    database.shutdown().await;
    let secret = result?;
    println!(
        "Open /setup/{} on Rampart within 24 hours to choose the password of `{name}` (the link works once).",
        secrecy::ExposeSecret::expose_secret(&secret)
    );
    Ok(())
}

/// Seals every webhook secret with the first key.
async fn reseal(keys: &server::sealed::SecretKeys, config: &server::config::DatabaseConfig) -> anyhow::Result<()> {
    let database = db::connect(config).await?;
    let store = server::store::Store::new(database.pool.clone());
    let result = server::webhooks::reseal(&store, keys).await;
    database.shutdown().await;
    println!("{} webhook secret(s) sealed with the first key", result?);
    Ok(())
}

/// Prints what the rules would have decided over a stored rollout.
async fn backtest(rollout: i64, plan: Option<&std::path::Path>, config: &server::config::DatabaseConfig) -> anyhow::Result<()> {
    let plan = plan.map(|path| load_plan(Some(path)).map(|(plan, _)| plan)).transpose()?;
    let (database, store, metrics) = reader(config).await?;
    let result = server::backtest::backtest(&store, &metrics, rollout, plan, (server::clock::system_clock())()).await;
    database.shutdown().await;
    print!("{}", server::backtest::report(&result?));
    Ok(())
}

/// Lines per transaction when importing.
const IMPORT_BATCH: usize = 5_000;
/// Batches being stored at once while the next is read: two keep both of Postgres's and the
/// importer's cores busy (one batch's rows travel while the other's rollups are written).
const IMPORT_IN_FLIGHT: usize = 2;

/// Streams a JSONL file into the store batch by batch (memory stays flat however large the
/// file), reporting progress on stderr and every rejected line by number.
async fn import(path: &std::path::Path, retention_days: u32, config: &server::config::DatabaseConfig) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use server::metrics::{IngestReport, Metrics, parse_lines};
    use std::io::{BufRead, IsTerminal, Write};

    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata()?.len().max(1);
    let database = db::connect(config).await?;
    let retention = app::domain::units::Span::from_secs(i64::from(retention_days) * 86_400);
    let metrics = Metrics::new(server::store::Store::new(database.pool.clone()), server::clock::system_clock(), retention);
    // Folds the rollup deltas of stored batches as it goes; the rest at the end.
    metrics.spawn_folding();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut report = IngestReport::default();
    let (mut batch, mut buf) = (Vec::<(u64, String)>::with_capacity(IMPORT_BATCH), Vec::new());
    let (mut line_no, mut read) = (0u64, 0u64);
    let started = std::time::Instant::now();
    let mut last_shown = started;
    let tty = std::io::stderr().is_terminal();
    let mut storing = std::collections::VecDeque::<tokio::task::JoinHandle<Result<IngestReport, app::error::AppError>>>::new();
    let result: anyhow::Result<()> = async {
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n > 0 {
                read += n as u64;
                line_no += 1;
                match String::from_utf8(std::mem::take(&mut buf)) {
                    Ok(text) => batch.push((line_no, text)),
                    Err(_) => report.reject(line_no, "line", "is not UTF-8 text".into()),
                }
            }
            if batch.len() == IMPORT_BATCH || (n == 0 && !batch.is_empty()) {
                // Read and parse the next batch while the ones before are being stored (their
                // reports taken in order, so reports and progress stay in line order).
                let (parsed, parse_report) = parse_lines(batch.iter().map(|(i, l)| (*i, l.trim_end_matches(['\n', '\r']))));
                batch.clear();
                if storing.len() == IMPORT_IN_FLIGHT
                    && let Some(oldest) = storing.pop_front()
                {
                    report.absorb(oldest.await??);
                }
                let metrics = metrics.clone();
                storing.push_back(tokio::spawn(async move { metrics.store_parsed(parsed, parse_report).await }));
                if n == 0 {
                    while let Some(stored) = storing.pop_front() {
                        report.absorb(stored.await??);
                    }
                }
                if last_shown.elapsed().as_secs_f64() >= if tty { 0.5 } else { 5.0 } || n == 0 {
                    last_shown = std::time::Instant::now();
                    let rate = line_no as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    let progress = format!(
                        "{:>5.1}%  {line_no} lines  {:.0}/{:.0} MB  {rate:.0} lines/s  {} new, {} already imported, {} rejected",
                        read as f64 * 100.0 / total as f64,
                        read as f64 / 1e6,
                        total as f64 / 1e6,
                        report.accepted,
                        report.duplicates,
                        report.rejected
                    );
                    let mut err = std::io::stderr();
                    let _ = if tty { write!(err, "\r{progress}") } else { writeln!(err, "{progress}") };
                }
            }
            if n == 0 {
                break;
            }
        }
        Ok(())
    }
    .await;
    // Stopped early by an error: the batches in flight still finish before the pool closes.
    for pending in storing {
        if let Ok(Ok(stored)) = pending.await {
            report.absorb(stored);
        }
    }
    let folded = metrics.fold().await;
    if tty {
        eprintln!();
    }
    database.shutdown().await;
    result?;
    if let Err(error) = folded {
        // Nothing is lost: every read adds the deltas still pending, and the next fold (a
        // running server's, or the next import's) adds them up.
        eprintln!("warning: the rollups were not brought up to date at the end ({error}); reads are exact regardless");
    }
    for e in &report.errors {
        eprintln!("line {}: {}: {}", e.line, e.field, e.message);
    }
    if report.errors_truncated {
        eprintln!("… and more; {} lines were rejected in all", report.rejected);
    }
    println!(
        "{}: {} lines, {} new events stored, {} already imported, {} rejected ({:.1?})",
        path.display(),
        line_no,
        report.accepted,
        report.duplicates,
        report.rejected,
        started.elapsed()
    );
    // What was good is stored either way; a script must still notice what was not.
    anyhow::ensure!(report.rejected == 0, "{} line(s) rejected (listed above); the other lines are stored", report.rejected);
    Ok(())
}

/// What each stage's gates need at the plan's stated traffic; a warning for every stage whose
/// soak is too short for them (a warning, not an error: the plan is valid).
fn print_power(plan: &app::domain::plan::Plan) {
    let Some(traffic) = &plan.traffic else {
        println!("  (no [traffic] stated: add it to see whether each stage's soak can reach a verdict)");
        return;
    };
    for stage in app::domain::power::plan(plan, traffic) {
        let line = format!("stage {} “{}”: {}", stage.stage, stage.name, stage.sentence());
        if stage.fits() { println!("  {line}") } else { println!("  warning: {line}") }
    }
}

/// Runs a Prometheus source's queries once over the last hour and prints what each counted
/// (and, with `matrix_labels`, each matrix cell's uploads as the plan's `matrix` classes them);
/// false when the source cannot vouch for its figures.
async fn check_source_live(source: &app::domain::source::PrometheusSource, matrix: Option<&app::domain::plan::Matrix>) -> bool {
    use app::domain::units::Timestamp;
    let now = Timestamp(chrono::Utc::now().timestamp_millis());
    let hour_ago = Timestamp(now.millis() - 3_600_000);
    let evidence = match server::prometheus::Origins::from_env() {
        Ok(allowed) => server::prometheus::Prometheus::allowing(allowed).query_all(source, hour_ago, now, now, [true, true]).await,
        Err(message) => {
            println!("  {message}");
            return false;
        }
    };
    println!("  {} over the last hour:", source.prometheus);
    for pulled in &evidence.pulled {
        let resets = if pulled.resets > 0 { format!(", {} counter restart(s)", pulled.resets) } else { String::new() };
        println!("  {}  →  {} series, increase {}{resets}", pulled.query, pulled.series, pulled.increase);
    }
    let (t, c) = (evidence.rows.treatment(), evidence.rows.control());
    println!("  treatment: {} uploads ({} errors, {} timeouts); control: {} uploads", t.count(), t.error, t.timeout, c.count());
    for cell in &evidence.cells {
        let size = matrix.map(|m| cell.size_class_mb(&m.sizes_mb));
        let listed = matrix.zip(size.flatten()).is_some_and(|(m, size)| m.lists(&cell.file_type, size, &cell.provider));
        let class = match size {
            Some(Some(size)) => format!(" (the {size} MB class)"),
            Some(None) => " (a size that is no number of megabytes)".to_string(),
            None => String::new(),
        };
        let outside = if listed || matrix.is_none() { "" } else { ", outside the plan's [matrix]" };
        let [treatment, control] = &cell.arms;
        println!(
            "  cell {} · {} · {}{class}: treatment {} uploads ({} failed), control {}{outside}",
            cell.file_type,
            cell.size,
            cell.provider,
            treatment.count(),
            treatment.error + treatment.timeout,
            control.count()
        );
    }
    match &evidence.problem {
        None => true,
        Some(problem) => {
            eprintln!("  error: {problem}");
            false
        }
    }
}

async fn check_plans(files: &[std::path::PathBuf], live: bool) -> ExitCode {
    if files.is_empty() {
        eprintln!("usage: rampart plan check [--live] FILE…");
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    for file in files {
        match load_plan(Some(file)) {
            Ok((plan, _)) => {
                println!("{}: ok — “{}”, {} stages", file.display(), plan.name, plan.stages.len());
                print_power(&plan);
                for source in plan.sources().into_iter().filter(|_| live) {
                    ok &= check_source_live(source, plan.matrix.as_ref()).await;
                }
            }
            Err(error) => {
                ok = false;
                eprintln!("{error:#}");
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
