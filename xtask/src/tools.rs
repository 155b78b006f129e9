//! Installing what the commands need, each skipped when already there: the wasm target and
//! wasm-bindgen, wasm-opt, Postgres, HAProxy, Prometheus, Unleash Edge, Node, Chromium and
//! Playwright, schemathesis.

use crate::{Project, Result, cargo_bin, embedded_pg, output, step};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// binaryen's wasm-opt from npm: Debian's (108) produces a WASM that never hydrates.
const BINARYEN: &str = "binaryen@132";

/// The Unleash Edge the flag benchmark runs beside Rampart (named in its table).
pub(crate) const UNLEASH_EDGE_VERSION: &str = "19.15.1";
/// The Swagger UI its build embeds (utoipa-swagger-ui 9.0.2's default), taken from npm.
const SWAGGER_UI_VERSION: &str = "5.17.14";

impl Project {
    /// The wasm target, the wasm-bindgen CLI that matches Cargo.lock, and (release) wasm-opt.
    pub(crate) fn ensure_build_tools(&self, release: bool) -> Result {
        let targets = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
        if !targets.lines().any(|t| t.trim() == "wasm32-unknown-unknown") {
            step("installing the wasm32 target", Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
        }
        let wanted = self.locked_version("wasm-bindgen")?;
        let installed = output(Command::new(cargo_bin("wasm-bindgen")).arg("--version")).unwrap_or_default();
        if installed.split_whitespace().nth(1) != Some(wanted.as_str()) {
            // Not --locked: one of the CLI's locked dependencies has been yanked.
            step(
                &format!("installing wasm-bindgen-cli {wanted} (about 3 minutes, once)"),
                self.cargo().args(["install", "wasm-bindgen-cli", "--version", &wanted]),
            )?;
        }
        if release && !self.wasm_opt().is_file() {
            self.ensure_node()?;
            let prefix = self.tools.join("binaryen");
            fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
            step(
                "installing wasm-opt (binaryen from npm)",
                Command::new("npm").args(["install", "--no-audit", "--no-fund", "--prefix"]).arg(&prefix).arg(BINARYEN),
            )?;
        }
        Ok(())
    }

    pub(crate) fn wasm_opt(&self) -> PathBuf {
        self.tools.join("binaryen/node_modules/.bin/wasm-opt")
    }

    /// Postgres server programs, unless a DATABASE_URL points elsewhere.
    pub(crate) fn ensure_postgres(&self) -> Result {
        if env::var_os("DATABASE_URL").is_none_or(|url| url.is_empty()) && embedded_pg::find_bin_dir().is_none() {
            apt_install(&["postgresql"])?;
        }
        Ok(())
    }

    /// HAProxy from Debian: the load balancer in front of the replicas in `tests/replicas.rs`.
    pub(crate) fn ensure_load_balancer(&self) -> Result {
        if !["/usr/sbin/haproxy", "/usr/bin/haproxy"].iter().any(|p| Path::new(p).exists()) {
            apt_install(&["haproxy"])?;
        }
        Ok(())
    }

    /// Unleash Edge, built from crates.io (offline mode needs no Unleash server): what the flag
    /// benchmark compares evaluation with. About 10 minutes the first time on two cores. Its
    /// build downloads Swagger UI from GitHub, which these machines cannot reach: the same
    /// release comes from npm (`swagger-ui-dist`) and is handed to the build as the zip it
    /// expects (`SWAGGER_UI_DOWNLOAD_URL=file://…`, a top folder holding `dist/`).
    pub(crate) fn ensure_unleash_edge(&self) -> Result {
        if cargo_bin("unleash-edge").is_file() {
            return Ok(());
        }
        self.ensure_node()?;
        let dir = self.root.join("target/unleash-edge");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let package = format!("swagger-ui-dist@{SWAGGER_UI_VERSION}");
        step(&format!("fetching {package} (npm)"), Command::new("npm").args(["pack", "--silent", &package]).current_dir(&dir))?;
        let zip = dir.join(format!("swagger-ui-{SWAGGER_UI_VERSION}.zip"));
        let script = format!(
            "import os, tarfile, zipfile\n\
             with tarfile.open('swagger-ui-dist-{v}.tgz') as tar, zipfile.ZipFile('{zip}', 'w') as out:\n\
             \x20   out.writestr('swagger-ui-{v}/', '')\n\
             \x20   for member in tar.getmembers():\n\
             \x20       if member.isfile():\n\
             \x20           out.writestr('swagger-ui-{v}/dist/' + member.name.split('/', 1)[1], tar.extractfile(member).read())\n",
            v = SWAGGER_UI_VERSION,
            zip = zip.display()
        );
        step("repacking Swagger UI as the zip Edge's build expects", Command::new("python3").args(["-c", &script]).current_dir(&dir))?;
        let mut install = Command::new("cargo");
        install
            .args(["install", "unleash-edge", "--version", UNLEASH_EDGE_VERSION, "--no-default-features", "--locked"])
            .env("SWAGGER_UI_DOWNLOAD_URL", format!("file://{}", zip.display()));
        step(&format!("installing Unleash Edge {UNLEASH_EDGE_VERSION} (cargo install)"), &mut install)
    }

    /// Prometheus from Debian: the metric source `tests/prometheus.rs` pulls from.
    pub(crate) fn ensure_prometheus(&self) -> Result {
        if !["/usr/bin/prometheus", "/usr/sbin/prometheus"].iter().any(|p| Path::new(p).exists()) {
            apt_install(&["prometheus"])?;
        }
        Ok(())
    }

    pub(crate) fn ensure_node(&self) -> Result {
        if output(Command::new("npm").arg("--version")).is_none() {
            apt_install(&["nodejs", "npm"])?;
        }
        Ok(())
    }

    /// schemathesis (PyPI) in a virtual environment under target/, installed once; returns its
    /// Python.
    pub(crate) fn ensure_api_fuzzer(&self) -> Result<PathBuf> {
        let venv = self.root.join("target/api-fuzz");
        let python = venv.join("bin/python");
        if !venv.join("bin/schemathesis").exists() {
            step("making a Python environment for schemathesis", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            step("installing schemathesis (pip)", Command::new(&python).args(["-m", "pip", "install", "-q", "schemathesis==4.32.5"]))?;
        }
        Ok(python)
    }

    /// Chromium from Debian and Playwright from npm; Playwright never downloads a browser here.
    pub(crate) fn ensure_browser_tools(&self) -> Result {
        self.ensure_node()?;
        if !Path::new("/usr/bin/chromium").exists() {
            apt_install(&["chromium"])?;
        }
        let e2e = self.root.join("end2end");
        // npm's own record of what node_modules holds; reinstall when the lockfile moved on.
        let installed = fs::metadata(e2e.join("node_modules/.package-lock.json")).and_then(|m| m.modified());
        let wanted = fs::metadata(e2e.join("package-lock.json")).and_then(|m| m.modified()).map_err(|e| e.to_string())?;
        if installed.map_or(true, |at| at < wanted) {
            let mut ci = Command::new("npm");
            ci.args(["ci", "--no-audit", "--no-fund"]).current_dir(&e2e).env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
            step("installing the browser-test packages (npm ci)", &mut ci)?;
        }
        Ok(())
    }

    pub(crate) fn locked_version(&self, package: &str) -> Result<String> {
        let lock = fs::read_to_string(self.root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
        let marker = format!("name = \"{package}\"\nversion = \"");
        let start = lock.find(&marker).ok_or_else(|| format!("{package} is not in Cargo.lock"))? + marker.len();
        Ok(lock[start..].split('"').next().unwrap_or_default().to_string())
    }
}

pub(crate) fn apt_install(packages: &[&str]) -> Result {
    step("refreshing Debian's package lists", Command::new("apt-get").args(["update", "-q"]))?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "-q", "--no-install-recommends"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive");
    step(&format!("installing {} (apt-get)", packages.join(", ")), &mut install)
}
