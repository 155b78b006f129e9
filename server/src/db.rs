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
    let pool = serving_pool_options().connect_with(options).await.context("could not connect to Postgres")?;
    migrate(&pool).await?;
    Ok(Database { pool, embedded })
}

/// The newest migration this binary knows.
pub fn newest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies this binary's pending migrations. A database that a newer release has migrated
/// further (a rolling upgrade: this replica restarting beside the new ones) is accepted when
/// its floor (`schema_floor`, migration 0021) is at or below what this binary knows — that
/// release's migrations are additive — and refused, untouched, when one of them raised it.
async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    // On a connection of its own, closed afterwards: a run that fails leaves sqlx's migration
    // lock (a session advisory lock) held by its connection, which back in the pool would stall
    // the next run, here or in another replica.
    let mut conn = pool.acquire().await.context("could not connect to Postgres")?.detach();
    let migrated = migrate_on(&mut conn).await;
    if let Err(error) = sqlx::Connection::close(conn).await {
        tracing::warn!(%error, "could not close the migration's connection");
    }
    migrated
}

async fn migrate_on(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    match MIGRATOR.run(&mut *conn).await {
        Err(sqlx::migrate::MigrateError::VersionMissing(_)) => {}
        other => return other.context("could not migrate the database"),
    }
    let known = newest_migration();
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations").fetch_all(&mut *conn).await?;
    let unknown: Vec<i64> = applied.into_iter().filter(|v| !MIGRATOR.version_exists(*v)).collect();
    // Only later releases' migrations may be unknown: one among this binary's own (a migration
    // removed, a branch that diverged) means a schema no release of this line made.
    if let Some(stray) = unknown.iter().find(|v| **v < known) {
        anyhow::bail!(
            "the database has migration {stray}, which this binary does not know although it knows later ones (up to {known}): \
             it was migrated by a build of another line; restore it or run that build"
        );
    }
    let newer = unknown.iter().max().copied().unwrap_or(known);
    let floor: i64 = sqlx::query_scalar("SELECT oldest_binary FROM schema_floor").fetch_one(&mut *conn).await.with_context(|| {
        format!("the database has migration {newer}, which this binary does not know; could not read its schema floor to say whether it may run on it")
    })?;
    anyhow::ensure!(
        floor <= known,
        "the database's schema needs a Rampart that knows migration {floor} or later; this one knows migrations up to {known}: \
         upgrade this replica to the release the others run"
    );
    tracing::info!(newer, known, floor, "the database's schema is newer than this binary's; its floor lets this binary run on it");
    let mut beside_newer = sqlx::migrate::Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    beside_newer.set_ignore_missing(true);
    beside_newer.run(&mut *conn).await.context("could not migrate the database")
}

/// The pool `rampart serve` runs on: [`pool_options`], 20 connections, and a request that
/// cannot get a connection within 5 s (the database down, or every connection busy) fails as
/// unavailable (503 with `Retry-After`) rather than waiting on.
pub fn serving_pool_options() -> PgPoolOptions {
    pool_options().max_connections(20).acquire_timeout(Duration::from_secs(5))
}

/// A pooled connection idle longer than this is pinged before it is handed out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Pool options every Rampart pool starts from: each new connection sends small messages at
/// once (see [`set_nodelay`]); a connection is pinged before use only if it sat idle for
/// [`PING_AFTER_IDLE`] (sqlx's default pings on every checkout: a round trip more for every
/// request, two for every ingested batch). One in steady use carries its own proof of life; a
/// query on one that died anyway fails with a connection error.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .after_connect(|conn, _| {
            Box::pin(async move {
                if let Err(e) = set_nodelay(conn).await {
                    tracing::warn!(error = %e, "could not turn Nagle's algorithm off for a Postgres connection; COPY will be slower");
                }
                Ok(())
            })
        })
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Turns Nagle's algorithm off on the connection's TCP socket.
///
/// sqlx 0.9.0 leaves it on (launchbadge/sqlx#4335, fixed upstream by #4336, not yet released).
/// With it on, the message that ends a COPY is held until the server acknowledges the data
/// before it, and the server delays that acknowledgement: about 40 ms per COPY on Linux, more
/// than writing a thousand events takes. sqlx does not hand out its socket, so this finds it:
/// the socket of this process whose local address is the client address the server sees.
/// Remove once sqlx sets TCP_NODELAY itself.
pub async fn set_nodelay(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    match client_address(conn).await? {
        Some(local) => with_socket(local, |socket| socket.set_tcp_nodelay(true)),
        None => Ok(()), // a Unix-domain socket: no Nagle
    }
}

/// Whether this connection's socket has Nagle's algorithm off (`None` on a Unix-domain socket).
pub async fn nodelay(conn: &mut sqlx::PgConnection) -> anyhow::Result<Option<bool>> {
    match client_address(conn).await? {
        Some(local) => with_socket(local, |socket| socket.tcp_nodelay()).map(Some),
        None => Ok(None),
    }
}

/// The connection's own address as the server sees it: this process's end of the socket.
async fn client_address(conn: &mut sqlx::PgConnection) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let (host, port): (Option<String>, Option<i32>) =
        sqlx::query_as("SELECT host(inet_client_addr()), inet_client_port()").fetch_one(&mut *conn).await?;
    let (Some(host), Some(port)) = (host, port) else { return Ok(None) };
    Ok(Some(std::net::SocketAddr::new(host.parse()?, u16::try_from(port)?)))
}

/// An address as one socket family: a server listening on IPv6 reports an IPv4 client as
/// `::ffff:a.b.c.d`, which the client's own socket calls `a.b.c.d`.
fn canonical(a: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Runs `f` on this process's socket bound to `local`.
fn with_socket<T>(local: std::net::SocketAddr, f: impl FnOnce(socket2::SockRef<'_>) -> std::io::Result<T>) -> anyhow::Result<T> {
    // The process's open descriptors (Linux and macOS list them in /dev/fd).
    for entry in std::fs::read_dir("/dev/fd")? {
        let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        // SAFETY: the descriptor was open when listed. Were it closed and reused meanwhile, the
        // address check would fail, or find this same connection (a local TCP address belongs
        // to one socket). Nothing but socket options is read or set through it.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        if socket.local_addr().ok().and_then(|a| a.as_socket()).map(canonical) == Some(canonical(local)) {
            return Ok(f(socket)?);
        }
    }
    anyhow::bail!("no socket of this process is bound to {local}")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Why a migration's SQL would break a binary of the previous release running beside it, if it
    /// would: dropping or renaming what that binary reads, changing a column's type, or a new
    /// `NOT NULL` it does not fill. Such a migration must raise `schema_floor` (checked below).
    fn breaks_older_binaries(sql: &str) -> Option<&'static str> {
        let code = code_of(sql);
        code.split(';').find_map(|statement| {
            let has = |words: &str| statement.contains(words);
            let drops = ["DROP TABLE", "DROP COLUMN", "DROP VIEW", "DROP MATERIALIZED VIEW", "DROP FUNCTION", "DROP TYPE", "DROP TRIGGER"];
            if drops.iter().any(|d| has(d)) {
                Some("drops what an older binary may read")
            } else if has("DROP INDEX") || has("DROP CONSTRAINT") {
                Some("drops an index or constraint an older binary's writes may rely on (ON CONFLICT)")
            } else if has(" RENAME ") {
                Some("renames what an older binary names")
            } else if has("SET NOT NULL") || (has("ALTER TABLE") && has(" ADD ") && has("NOT NULL") && !has("DEFAULT")) {
                Some("adds a NOT NULL an older binary does not fill")
            } else if has("ADD CONSTRAINT") || has("CREATE UNIQUE INDEX") {
                Some("adds a constraint an older binary's writes may break")
            } else if has("ALTER COLUMN") && has(" TYPE ") {
                Some("changes a column's type under an older binary")
            } else {
                None
            }
        })
    }

    /// A migration's SQL without its comments, upper-cased, on one line.
    fn code_of(sql: &str) -> String {
        let code: String = sql.lines().map(|line| line.split("--").next().unwrap_or("")).collect::<Vec<_>>().join(" ").to_uppercase();
        code.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The floor a migration sets (`UPDATE schema_floor SET oldest_binary = N`), if it sets one.
    fn floor_set(sql: &str) -> Option<i64> {
        let code = code_of(sql);
        let rest = code.split("UPDATE SCHEMA_FLOOR SET OLDEST_BINARY =").nth(1)?;
        rest.trim().trim_end_matches(';').split([';', ' ']).next()?.parse().ok()
    }

    /// Every migration from 0021 on either keeps the previous release running beside it or
    /// raises the schema's floor, so a rolling upgrade never runs a binary on a schema it breaks on.
    #[test]
    fn a_migration_that_breaks_older_binaries_raises_the_floor() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let version: i64 = name.split('_').next().unwrap().parse().unwrap();
            if version < 21 {
                continue;
            }
            let sql = std::fs::read_to_string(&path).unwrap();
            if let Some(why) = breaks_older_binaries(&sql) {
                assert!(
                    floor_set(&sql).is_some_and(|floor| floor >= version),
                    "{name} {why}: it must raise schema_floor to its own version (UPDATE schema_floor SET oldest_binary = {version})"
                );
            }
            checked += 1;
        }
        assert!(checked >= 1, "0021 on are checked");
        // The check itself.
        assert_eq!(breaks_older_binaries("CREATE TABLE t (id bigint);\nALTER TABLE a ADD COLUMN b text;"), None);
        assert_eq!(breaks_older_binaries("ALTER TABLE a ADD COLUMN b bigint NOT NULL DEFAULT 0;"), None);
        assert_eq!(breaks_older_binaries("-- we do not DROP TABLE here\nCREATE INDEX i ON a (b);"), None);
        assert!(breaks_older_binaries("ALTER TABLE a ADD COLUMN b bigint NOT NULL;").is_some());
        assert!(breaks_older_binaries("alter table a\n  alter column b set not null;").is_some());
        assert!(breaks_older_binaries("ALTER TABLE a DROP COLUMN b;").is_some());
        assert!(breaks_older_binaries("ALTER TABLE a RENAME TO b;").is_some());
        assert!(breaks_older_binaries("ALTER TABLE a ALTER COLUMN b TYPE numeric;").is_some());
        assert!(breaks_older_binaries("DROP TABLE event_ids;").is_some());
        assert!(breaks_older_binaries("ALTER TABLE a ADD b bigint NOT NULL;").is_some(), "COLUMN is optional");
        assert!(breaks_older_binaries("DROP INDEX alerts_open;").is_some());
        assert!(breaks_older_binaries("ALTER TABLE a ADD CONSTRAINT c CHECK (b > 0);").is_some());
        assert!(breaks_older_binaries("CREATE UNIQUE INDEX u ON a (b);").is_some());
        assert_eq!(floor_set("-- UPDATE schema_floor SET oldest_binary = 40\nSELECT 1;"), None, "a comment sets nothing");
        assert_eq!(floor_set("UPDATE schema_floor\n   SET oldest_binary = 25;"), Some(25));
    }

    #[test]
    fn nagle_is_turned_off_on_the_socket_bound_to_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let other = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(!stream.nodelay().unwrap(), "sockets start with Nagle on");

        with_socket(stream.local_addr().unwrap(), |s| s.set_tcp_nodelay(true)).unwrap();
        assert!(stream.nodelay().unwrap());
        assert!(!other.nodelay().unwrap(), "only that socket");

        let other_port = other.local_addr().unwrap().port();
        let mapped = std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), other_port);
        with_socket(mapped, |s| s.set_tcp_nodelay(true)).unwrap();
        assert!(other.nodelay().unwrap(), "found by its IPv4-mapped IPv6 address");

        let unbound = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        assert!(with_socket(unbound, |s| s.set_tcp_nodelay(true)).is_err());
    }
}
