//! Rampart's one typed configuration, read once at start-up from flags and the environment.
//! Nothing else in the server reads `std::env`.

use crate::egress::{Egress, Roots};
use crate::net::IpRanges;
use crate::prometheus::Origins;
use crate::sealed::SecretKeys;
use crate::simulate::Injection;
use app::domain::units::Span;
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "rampart", version, about = "Staged feature rollouts: gates, guardrails, approvals.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Serve the dashboard and the API (the default).
    Serve(ServeConfig),
    /// Validate plan files and print what is wrong with each, by line and field.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Apply the database migrations and exit.
    Migrate(DatabaseConfig),
    /// Import a metrics JSONL file (any size, streamed); lines already imported are skipped.
    Import {
        /// The file, one event per line.
        file: PathBuf,
        /// Raw events older than this many days are refused.
        #[arg(long, env = "RAMPART_RETENTION_DAYS", default_value_t = 90)]
        retention_days: u32,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Play the upload service against a running Rampart: synthetic users upload files, each
    /// upload asks the flag and reports one metrics event.
    Simulate {
        /// Rampart's address.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        #[arg(long, default_value = "async_upload")]
        flag: String,
        /// An API token with the `evaluate` and `ingest` scopes.
        #[arg(long, env = "RAMPART_TOKEN", value_parser = parse_secret, hide_env_values = true)]
        token: SecretString,
        /// Uploads per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Distinct users uploading.
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        /// How long to run, e.g. `10m`; until Ctrl-C when unset.
        #[arg(long, value_parser = Span::parse)]
        duration: Option<Span>,
        /// Write this much history ending now (e.g. `2h`) as fast as possible, then exit.
        #[arg(long, value_parser = Span::parse)]
        backfill: Option<Span>,
        /// A regression in the treatment arm: error=20%@30s, latency=3x@2m, memory=2x@0s,
        /// critical=1%@1m (repeatable).
        #[arg(long = "inject", value_parser = Injection::parse)]
        injections: Vec<Injection>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Recompute a decision (an automatic rollback, or the gates a command was judged with) from
    /// the stored data and show it beside the receipt written then; exits 1 if they differ, and 2
    /// if the metric source cannot give the judged minutes now (Prometheus down, or its data gone).
    Explain {
        /// The rollout's id.
        rollout: i64,
        /// The audit entry's id (the API's `audit[].id`).
        entry: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Send a CI run's JUnit XML report to a running Rampart as one of the plan's test suites
    /// (what a CI step runs after the tests); with `--dry-run`, read it and print what it says.
    TestResults {
        /// The JUnit XML file (cargo-nextest, pytest, Playwright, Surefire, …).
        file: PathBuf,
        /// The plan's suite the report is, e.g. `Phase 1` (default: the report's own name).
        #[arg(long)]
        suite: Option<String>,
        #[arg(long, default_value_t = 1)]
        rollout: i64,
        /// The stage the run belongs to (default: the rollout's current one).
        #[arg(long)]
        stage: Option<u32>,
        /// A link to the CI run, shown beside the result.
        #[arg(long)]
        link: Option<String>,
        /// Rampart's address.
        #[arg(long, env = "RAMPART_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        /// An API token with the `drive` scope.
        #[arg(long, env = "RAMPART_TOKEN", value_parser = parse_secret, hide_env_values = true)]
        token: Option<SecretString>,
        /// Read and summarise the report; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Replay a stored rollout's evidence through the current guard rules (or a plan file's
    /// guardrails and soaks) minute by minute, and list the decisions they would have made.
    Backtest {
        /// The rollout's id.
        rollout: i64,
        /// A plan file whose guardrails and soaks to judge with instead of the rollout's own.
        #[arg(long)]
        plan: Option<PathBuf>,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Inspect what a flag serves.
    Flag {
        #[command(subcommand)]
        command: FlagCommand,
    },
    /// Manage the secrets Rampart keeps sealed (webhook signing secrets).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage people from the command line (when nobody can sign in).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Print a one-time link (24 hours) where NAME chooses a new password: the way back in when
    /// the first admin's link was lost, or every admin's password is.
    SetupLink {
        name: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Seal every webhook secret with the first of RAMPART_SECRET_KEYS (after listing a new key
    /// first: then the old one can be dropped), opening each with whichever key sealed it.
    Reseal {
        #[arg(long, env = "RAMPART_SECRET_KEYS", value_parser = SecretKeys::parse, hide_env_values = true)]
        secret_keys: SecretKeys,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Print what each unit gets from the flag right now, with its bucket (1–100).
    Eval {
        /// The flag's key, e.g. async_upload.
        flag: String,
        /// Units (user ids, request ids) to evaluate.
        #[arg(required = true)]
        units: Vec<String>,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Check one or more plan files; exits non-zero if any is invalid.
    Check {
        files: Vec<PathBuf>,
        /// Also run a plan's `[metrics_source]` queries once, over the last hour, and show what
        /// came back (exits non-zero if the source cannot vouch for it).
        #[arg(long)]
        live: bool,
    },
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Postgres to use. Without it Rampart runs a private cluster under --data-dir.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_secret, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Folder for Rampart's own Postgres cluster when no database URL is given.
    #[arg(long, env = "RAMPART_DATA_DIR", default_value = ".rampart")]
    pub data_dir: PathBuf,
}

/// How to serve.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Address to listen on.
    #[arg(long, env = "RAMPART_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Plan file for the rollout created on first start; the built-in async-upload plan if unset.
    #[arg(long, env = "RAMPART_PLAN")]
    pub plan: Option<PathBuf>,
    /// Raw events older than this many days are dropped (rollups and baselines are kept).
    #[arg(long, env = "RAMPART_RETENTION_DAYS", default_value_t = 90)]
    pub retention_days: u32,
    /// Folder with the compiled site (pkg/ with the WASM, JS and CSS, and the public assets).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
    /// Password of the first admin account, created on first start when there are no users.
    /// Unset: a one-time link to choose it (`/setup/…`, 24 hours) is printed instead.
    #[arg(long, env = "RAMPART_ADMIN_PASSWORD", value_parser = parse_secret, hide_env_values = true)]
    pub admin_password: Option<SecretString>,
    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "RAMPART_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u32,
    /// Address ranges webhooks may be sent to besides public addresses, comma-separated
    /// (`10.0.0.0/8,127.0.0.1`): loopback, private, link-local (cloud metadata) and similar
    /// addresses are refused otherwise.
    #[arg(long, env = "RAMPART_WEBHOOK_ALLOW", value_parser = Egress::parse, default_value = "")]
    pub webhook_allow: Egress,
    /// A PEM file of certificate authorities trusted for https webhook receivers besides the
    /// public roots (an internal CA). Certificates are always verified.
    #[arg(long, env = "RAMPART_WEBHOOK_CA", value_parser = Roots::read, default_value = "")]
    pub webhook_ca: Roots,
    /// The Prometheus servers plans may read their evidence from, comma-separated
    /// (`https://prometheus.internal:9090`), compared by scheme, host and port. Unset: any
    /// server a plan names (a plan's credentials go to the server it names).
    #[arg(long, env = "RAMPART_PROMETHEUS_ALLOW", value_parser = Origins::parse, default_value = "")]
    pub prometheus_allow: Origins,
    /// Proxies whose `X-Forwarded-For` names the client (comma-separated address ranges): sign-in
    /// throttling and the audit then see the client's address. Unset: the peer's address is the
    /// client's, and the header is ignored.
    #[arg(long, env = "RAMPART_TRUSTED_PROXIES", value_parser = IpRanges::parse, default_value = "")]
    pub trusted_proxies: IpRanges,
    /// Keys that seal secrets Rampart must read back (webhook signing secrets) in the database:
    /// comma-separated, 64 hex digits each (`openssl rand -hex 32`); the first seals, all open.
    /// Unset: those secrets are stored in plain text (a warning at start).
    #[arg(long, env = "RAMPART_SECRET_KEYS", value_parser = SecretKeys::parse, default_value = "", hide_env_values = true)]
    pub secret_keys: SecretKeys,
}

impl ServeConfig {
    /// Where webhooks may go and whose certificates they trust.
    pub fn egress(&self) -> Egress {
        Egress { roots: self.webhook_ca.clone(), ..self.webhook_allow.clone() }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            database: DatabaseConfig { database_url: None, data_dir: ".rampart".into() },
            addr: ([127, 0, 0, 1], 3000).into(),
            plan: None,
            retention_days: 90,
            site_root: "target/site".into(),
            admin_password: None,
            session_hours: 12,
            webhook_allow: Egress::default(),
            webhook_ca: Roots::default(),
            prometheus_allow: Origins::default(),
            trusted_proxies: IpRanges::default(),
            secret_keys: SecretKeys::default(),
        }
    }
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_string()))
}
