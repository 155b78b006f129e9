//! Connecting to Postgres: the configured server, or Rampart's own cluster started on demand.
//! Either way the schema is migrated before anything else touches it.

use crate::config::DatabaseConfig;
use crate::embedded_pg::EmbeddedPostgres;
use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The database Rampart's own cluster serves (also spelled out in `ensure_database`).
const EMBEDDED_DATABASE: &str = "rampart";

/// A migrated pool, and the private cluster behind it if Rampart started one.
pub struct Database {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Closes the pool and stops the private cluster if this process started it.
    pub async fn shutdown(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded.filter(|pg| pg.started_here) {
            match tokio::task::spawn_blocking(move || pg.stop()).await {
                Ok(Ok(())) => tracing::info!("stopped the private Postgres cluster"),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not stop the private Postgres cluster"),
                Err(e) => tracing::warn!(error = %e, "could not stop the private Postgres cluster"),
            }
        }
    }
}

pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Database> {
    let (options, embedded) = match &config.database_url {
        Some(url) => {
            let options = PgConnectOptions::from_str(url.expose_secret()).context("DATABASE_URL is not a Postgres URL")?;
            (options, None)
        }
        None => {
            let dir = config.data_dir.join("postgres");
            let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir))
                .await?
                .context("could not start Rampart's private Postgres cluster")?;
            tracing::info!(port = pg.port(), reused = !pg.started_here, "using Rampart's private Postgres cluster");
            ensure_database(&pg).await?;
            let options = PgConnectOptions::from_str(&pg.url(EMBEDDED_DATABASE))?;
            (options, Some(pg))
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("could not connect to Postgres")?;
    MIGRATOR.run(&pool).await.context("could not migrate the database")?;
    Ok(Database { pool, embedded })
}

async fn ensure_database(pg: &EmbeddedPostgres) -> anyhow::Result<()> {
    let admin = PgPool::connect(&pg.url("postgres")).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(EMBEDDED_DATABASE)
        .fetch_one(&admin)
        .await?;
    if !exists {
        sqlx::query("CREATE DATABASE rampart").execute(&admin).await?;
    }
    admin.close().await;
    Ok(())
}
