//! All of Rampart's SQL, behind typed functions. Queries are checked at compile time against the
//! metadata committed in `.sqlx/`; the domain's decisions are applied here inside one
//! transaction together with the audit record that explains them.

use app::domain::plan::Plan;
use app::domain::rollout::{Refusal, Rollout};
use app::domain::units::{Timestamp, Version};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

mod accounts;
mod audit;
mod baselines;
mod checklists;
/// Rows in binary `COPY` format (public for the ingest benchmark's baseline, which writes as the store does).
pub mod copy;
mod events;
mod guard;
mod idempotency;
mod operations;
mod reports;
mod rollouts;
mod rollups;
mod webhooks;
pub use accounts::{Credentials, Holder, LoginTally};
pub(crate) use audit::insert_audit;
pub use audit::{AuditQuery, AuditRecord, AuditRow, INCIDENTS, INCIDENTS_MAX};
pub use baselines::Baseline;
pub use events::{Ingested, NewEvent, StageSpan};
pub use guard::GuardLease;
pub use idempotency::{Claim, Purged};
pub use operations::Outbox;
pub use reports::{NewTestResult, NotesSaved, ReportNotes, TestResult};
use rollouts::{Lock, load_rollout};
pub use rollups::{ArmKey, CellKey, RollupFilter, RollupKey};
pub use webhooks::DueDelivery;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// The SQLSTATE Postgres answered with, if it answered.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// Whether the database could not serve the call at all — unreachable, shutting down or
    /// restarting, out of connections, disk or memory, or read-only — as opposed to refusing
    /// it or holding unreadable data. Nothing was written; the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
            StoreError::Db(sqlx::Error::Database(e)) => e.code().is_some_and(|code| unavailable_sqlstate(&code)),
            _ => false,
        }
    }
}

/// SQLSTATEs of a database that cannot serve now: class 08 (connection exception, but for a
/// protocol violation), class 53
/// (insufficient resources: disk full, out of memory, too many connections), 57P01–57P03
/// (shutting down, crash shutdown, cannot connect now) and 25006 (read-only transaction: a
/// standby, or `default_transaction_read_only`).
fn unavailable_sqlstate(code: &str) -> bool {
    // 08P01 is a protocol violation: a bug, not an outage.
    (code.starts_with("08") && code != "08P01") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A rollout as stored, with the plan it follows.
#[derive(Clone, Debug)]
pub struct StoredRollout {
    pub id: i64,
    pub plan: Plan,
    pub state: Rollout,
}

/// A rollout that is not complete, and the version of its state.
#[derive(Clone, Debug)]
pub struct LiveRollout {
    pub id: i64,
    pub flag_key: String,
    pub version: Version,
}

/// The NOTIFY channel on which a rollout's flag key is announced when its served config changes.
const FLAG_CHANNEL: &str = "rampart_flags";

/// Postgres-backed storage. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

pub fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp(t.timestamp_millis())
}

pub fn from_timestamp(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.millis()).unwrap_or_default()
}

impl Store {
    pub fn new(pool: PgPool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the database answers (the health check).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
