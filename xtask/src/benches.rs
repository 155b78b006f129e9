//! The measuring commands: `bench`, `load`, `first-load` and `calibrate` (docs/benchmarks.md).

use crate::test_db::TestDatabase;
use crate::tools::UNLEASH_EDGE_VERSION;
use crate::{Project, Result, cargo_bin, e2e_server, step};
use std::process::Command;

/// Runs every benchmark (flag delivery, then metrics) against a private Postgres (or DATABASE_URL's server).
pub(crate) fn bench() -> Result {
    let project = Project::open()?;
    project.ensure_postgres()?;
    // Edge is a comparison, not a requirement: without it the flag bench says so and goes on.
    if let Err(error) = project.ensure_unleash_edge() {
        eprintln!("xtask: Unleash Edge could not be installed ({error}); the flag bench runs without it");
    }
    let database = TestDatabase::start(&project)?;
    let result = step(
        "running the benchmarks (release build)",
        project
            .cargo()
            .args(["bench", "-p", "server"])
            .env("DATABASE_URL", database.url("postgres"))
            .env("UNLEASH_EDGE", cargo_bin("unleash-edge"))
            .env("UNLEASH_EDGE_VERSION", UNLEASH_EDGE_VERSION),
    );
    database.stop();
    result
}

/// The load run (docs/benchmarks.md § Load): flags, ingest, dashboard and live streams at once
/// against one and three `rampart serve` processes, release build, bounded time.
pub(crate) fn load() -> Result {
    let project = Project::open()?;
    project.ensure_postgres()?;
    let database = TestDatabase::start(&project)?;
    let result = step(
        "running the load run (release build)",
        project.cargo().args(["bench", "-p", "server", "--bench", "load"]).env("DATABASE_URL", database.url("postgres")),
    );
    database.stop();
    result
}

/// The control room's first load (docs/benchmarks.md § WASM bundle and first load): the release
/// build on a fresh database that `end2end/bench/first-load.mjs` seeds, measured in Chromium on
/// loopback and at DevTools' "Slow 4G".
pub(crate) fn first_load() -> Result {
    let project = Project::open()?;
    project.ensure_build_tools(true)?;
    project.ensure_postgres()?;
    project.ensure_browser_tools()?;
    project.build(true, true)?;
    let database = TestDatabase::start(&project)?;
    let password = "first-load-admin-password";
    let outcome = e2e_server(&project, &database, "rampart_first_load", password, "release").and_then(|(_server, addr)| {
        step(
            "measuring the control room's first load (Chromium: loopback and slow 4G)",
            Command::new("node")
                .arg("bench/first-load.mjs")
                .current_dir(project.root.join("end2end"))
                .env("RAMPART_URL", format!("http://{addr}"))
                .env("RAMPART_ADMIN_PASSWORD", password)
                .env("RAMPART_BINARY", project.root.join("target/release/rampart")),
        )
    });
    database.stop();
    outcome
}

/// The guard's and gates' calibration under simulated traffic (docs/benchmarks.md §
/// Calibration): a release build of the domain, no database. Passes `--quick` and `--runs N` on.
pub(crate) fn calibrate(args: &[String]) -> Result {
    let project = Project::open()?;
    step("running the calibration (release build)", project.cargo().args(["bench", "-p", "app", "--bench", "calibrate", "--"]).args(args))
}
