//! The `rampart` command: serve (the default), check plan files, migrate.

use clap::Parser;
use server::config::{Cli, CliCommand, FlagCommand, PlanCommand, ServeConfig};
use server::startup::{self, load_plan};
use server::{db, service};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")))
        .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or_else(|| CliCommand::Serve(ServeConfig::default())) {
        CliCommand::Serve(config) => serve(config).await,
        CliCommand::Plan { command: PlanCommand::Check { files } } => return check_plans(&files),
        CliCommand::Flag { command: FlagCommand::Eval { flag, units, database } } => eval_flag(&flag, &units, &database).await,
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
    // Validate the plan before starting a database, so a typo fails fast.
    load_plan(config.plan.as_deref())?;
    let database = db::connect(&config.database).await?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let result = match startup::build(&config, listener, database.pool.clone(), service::system_clock()).await {
        Ok(app) => {
            tracing::info!("Rampart is serving on http://{}", app.local_addr());
            app.run_until_stopped(startup::shutdown_signal()).await.map_err(Into::into)
        }
        Err(e) => Err(e),
    };
    database.shutdown().await;
    result
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
    println!("{:<32} {:>6}  {:<9} {}", "unit", "bucket", "variant", "enabled");
    for unit in units {
        let result = app::domain::bucketing::evaluate(config.served(), &config.group, unit);
        println!("{unit:<32} {:>6}  {:<9} {}", result.bucket, result.variant(), result.enabled);
    }
    Ok(())
}

fn check_plans(files: &[std::path::PathBuf]) -> ExitCode {
    if files.is_empty() {
        eprintln!("usage: rampart plan check FILE…");
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    for file in files {
        match load_plan(Some(file)) {
            Ok((plan, _)) => println!("{}: ok — “{}”, {} stages", file.display(), plan.name, plan.stages.len()),
            Err(error) => {
                ok = false;
                eprintln!("{error:#}");
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
