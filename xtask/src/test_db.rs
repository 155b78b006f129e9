//! The Postgres the tests and benches use: DATABASE_URL's server, or a private cluster under
//! target/.

use crate::embedded_pg::{self, EmbeddedPostgres};
use crate::{Project, Result, step};
use std::env;
use std::process::Command;
use std::time::Instant;

/// The Postgres the tests use: DATABASE_URL's server if set, else a private cluster under target/.
pub(crate) struct TestDatabase {
    base_url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl TestDatabase {
    pub(crate) fn start(project: &Project) -> Result<TestDatabase> {
        // An empty DATABASE_URL counts as unset.
        if let Some(url) = env::var("DATABASE_URL").ok().filter(|url| !url.is_empty()) {
            let base = url.rsplit_once('/').map_or(url.clone(), |(b, _)| b.to_string());
            return Ok(TestDatabase { base_url: base, embedded: None });
        }
        let t = Instant::now();
        let pg = EmbeddedPostgres::start(&project.root.join("target/test-postgres")).map_err(|e| e.to_string())?;
        eprintln!("xtask: private Postgres for the tests on port {} ({:.1?})", pg.port(), t.elapsed());
        Ok(TestDatabase { base_url: format!("postgres://postgres@127.0.0.1:{}", pg.port()), embedded: Some(pg) })
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.base_url)
    }

    /// Drops and recreates `name`, returning its URL.
    pub(crate) fn fresh(&self, name: &str) -> Result<String> {
        let bin = embedded_pg::find_bin_dir().map(|d| d.to_path_buf()).unwrap_or_default();
        let maintenance = format!("--maintenance-db={}", self.url("postgres"));
        step("", Command::new(bin.join("dropdb")).args(["--if-exists", &maintenance, name]))?;
        step("", Command::new(bin.join("createdb")).args([&maintenance, name]))?;
        Ok(self.url(name))
    }

    pub(crate) fn stop(&self) {
        if let Some(pg) = self.embedded.as_ref().filter(|pg| pg.started_here) {
            let _ = pg.stop();
        }
    }
}
