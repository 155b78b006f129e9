//! A private Postgres cluster for when no `DATABASE_URL` is given: the system's `initdb` and
//! `pg_ctl` run a cluster in a data folder of Rampart's own, listening on a free loopback port.
//!
//! This file uses only the standard library: `xtask` includes it verbatim (`#[path]`) to run
//! the tests against the same kind of cluster, so there is one implementation of it.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running cluster. Stop it with [`EmbeddedPostgres::stop`]; dropping it leaves it running so
/// a crashed process does not take the database down with it (the next start reuses it).
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
    /// False when an already running cluster was reused.
    pub started_here: bool,
}

impl EmbeddedPostgres {
    /// Starts the cluster kept in `dir` (creating it on first use), or reuses it if it runs.
    pub fn start(dir: &Path) -> io::Result<EmbeddedPostgres> {
        let bin = find_bin_dir().ok_or_else(|| {
            other(
                "PostgreSQL's server programs (initdb, pg_ctl) were not found on PATH or under \
                   /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql) \
                   or set DATABASE_URL",
            )
        })?;
        let as_postgres_user = is_root();
        fs::create_dir_all(dir)?;
        let mut dir = fs::canonicalize(dir)?;
        if as_postgres_user {
            // initdb refuses to run as root, so the cluster belongs to the `postgres` user, who
            // must be able to reach the folder; a private temp folder (mode 700) is not reachable.
            if !postgres_user_can_enter(&dir) {
                dir = std::env::temp_dir().join(format!("rampart-pg-{:016x}", fnv1a(dir.as_os_str().as_encoded_bytes())));
                fs::create_dir_all(&dir)?;
            }
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir), "chown the data folder")?;
        }
        let data = dir.join("data");
        let log = dir.join("postgres.log");
        let mut pg = EmbeddedPostgres { data, log, bin, port: 0, as_postgres_user, started_here: false };

        if !pg.data.join("PG_VERSION").exists() {
            let mut initdb = pg.command("initdb");
            initdb.arg("-D").arg(&pg.data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
            run(&mut initdb, "initdb")?;
        }
        if let Some(port) = pg.running_port() {
            pg.port = port;
            return Ok(pg);
        }
        pg.port = free_port()?;
        pg.launch()?;
        pg.started_here = true;
        Ok(pg)
    }

    /// Starts the postmaster on this cluster's data and port.
    fn launch(&self) -> io::Result<()> {
        let options = format!("-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='' -c max_connections=200", self.port);
        let mut start = self.command("pg_ctl");
        start.arg("-D").arg(&self.data).arg("-l").arg(&self.log).args(["-o", &options, "-w", "-t", "60", "start"]);
        run(&mut start, "pg_ctl start").map_err(|e| {
            let tail = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            other(format!("{e}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n")))
        })
    }

    /// Stops the cluster as a crash would (`pg_ctl stop -m immediate`: no checkpoint; the next
    /// start replays the write-ahead log). For the fault tests.
    pub fn crash(&self) -> io::Result<()> {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]);
        run(&mut stop, "pg_ctl stop -m immediate")
    }

    /// Starts a stopped cluster again on the same port, so clients' URLs still reach it.
    pub fn resume(&self) -> io::Result<()> {
        self.launch()
    }

    /// The connection URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the cluster (fast shutdown: sessions are ended, committed data is kept).
    pub fn stop(&self) -> io::Result<()> {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]);
        run(&mut stop, "pg_ctl stop")
    }

    /// The port of a postmaster already running on this data folder, if any.
    fn running_port(&self) -> Option<u16> {
        let mut status = self.command("pg_ctl");
        status.arg("-D").arg(&self.data).arg("status").stdout(Stdio::null()).stderr(Stdio::null());
        if !status.status().ok()?.success() {
            return None;
        }
        // postmaster.pid: pid, data dir, start time, port, …
        let pid_file = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

/// The folder holding `initdb` and `pg_ctl` (on PATH, else the newest under /usr/lib/postgresql).
pub fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let mut versioned: Vec<PathBuf> =
        fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|e| e.path().join("bin")).collect();
    versioned
        .sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0));
    on_path
        .chain(versioned.into_iter().rev())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        // Resolve links (/usr/local/bin/initdb → /usr/lib/postgresql/15/bin/initdb): the real
        // folder also holds the client programs (psql, createdb) of the same version.
        .map(|dir| fs::canonicalize(dir.join("initdb")).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(dir))
}

fn run(command: &mut Command, what: &str) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        return Ok(());
    }
    let mut message = format!("{what} failed ({})", output.status);
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        if !text.trim().is_empty() {
            message.push('\n');
            message.push_str(text.trim());
        }
    }
    Err(other(message))
}

fn other(message: impl Into<String>) -> io::Error {
    io::Error::other(message.into())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false)
}

fn postgres_user_can_enter(dir: &Path) -> bool {
    Command::new("runuser").args(["-u", "postgres", "--", "test", "-x"]).arg(dir).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A stable short hash for naming a fallback folder after the requested one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
