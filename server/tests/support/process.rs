//! Real `rampart serve` processes for the tests that kill, restart or balance them.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "replicas-admin-password";

/// A `rampart serve` process; killed when dropped.
pub struct Replica {
    child: Child,
    pub base: String,
}

impl Replica {
    pub async fn start(database_url: &str, log: &std::path::Path) -> Replica {
        let port = free_port();
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", database_url)
            .env("RAMPART_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rampart starts");
        let replica = Replica { child, base: format!("http://127.0.0.1:{port}") };
        wait_until(Duration::from_secs(60), || async { get_status(&format!("{}/readyz", replica.base)).await == Some(200) }).await;
        replica
    }

    /// SIGTERM: the way an orchestrator stops it.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends it a signal by name (`TERM`; `STOP` freezes it with its connections open, as a
    /// paused VM or a cut network would, until `CONT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Its exit status, if it exits within `limit`.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Peak resident memory so far (`VmHWM`), in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb =
            status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
        kb.unwrap_or(0.0) / 1024.0
    }

    /// SIGKILL: no shutdown, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Debian's HAProxy: the real load balancer (and authenticating proxy) the tests put in front
/// of servers, run with a test's configuration; killed when dropped.
pub struct Haproxy(Child);

impl Haproxy {
    /// Starts HAProxy with `config`, written to `dir/haproxy.cfg` (its log beside it).
    pub fn start(config: &str, dir: &std::path::Path) -> Haproxy {
        let binary = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].into_iter().find(|p| std::path::Path::new(p).exists()).expect(
            "HAProxy is not installed: `cargo xtask test` installs it (Debian: apt-get install haproxy); this test needs a real load balancer",
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("haproxy starts");
        Haproxy(child)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn get_status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

pub async fn wait_until<F, Fut>(limit: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < limit, "not ready within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
