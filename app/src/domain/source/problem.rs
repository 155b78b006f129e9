//! What the source cannot vouch for (`Problem`): every verdict built on such figures is
//! inconclusive with the reason.

use crate::domain::units::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the source's figures for a span cannot be trusted. Every verdict built on them is
/// inconclusive with this reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The server did not answer, or answered with an error.
    Unreachable { message: String },
    /// A query matched no series at all.
    NoSeries { query: String },
    /// The newest sample is older than the plan allows.
    Stale { query: String, newest: Timestamp },
    /// No samples between these two times, inside the judged span.
    Gap { query: String, from: Timestamp, to: Timestamp },
    /// An uploads series whose outcome label is none of the plan's outcomes: its uploads would
    /// count as neither success nor failure.
    UnknownOutcome { query: String, value: String },
    /// A histogram that did not observe every upload (or observed more): its mean and spread
    /// would be of other uploads than the rates'.
    Mismatch { query: String, observed: u64, uploads: u64 },
    /// The plan names a server the operator has not allowed Rampart to read.
    NotAllowed { url: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreachable { message } => write!(f, "Prometheus did not answer: {message}"),
            Problem::NoSeries { query } => write!(f, "`{query}` matched no series"),
            Problem::Stale { query, newest } => write!(f, "`{query}` is stale: its newest sample is from {}", utc(*newest)),
            Problem::Gap { query, from, to } => {
                write!(f, "`{query}` has no samples from {} to {} (a scrape gap)", utc(*from), utc(*to))
            }
            Problem::UnknownOutcome { query, value } => {
                write!(f, "`{query}` has a series whose outcome is `{value}`, none of the plan's outcomes")
            }
            Problem::Mismatch { query, observed, uploads } => {
                write!(f, "`{query}` observed {observed} uploads where the uploads counter has {uploads}")
            }
            Problem::NotAllowed { url } => {
                write!(f, "{url} is not among the Prometheus servers this Rampart may read (RAMPART_PROMETHEUS_ALLOW)")
            }
        }
    }
}

/// `2026-12-04 17:05:30 UTC`: a sample's time to the second.
fn utc(t: Timestamp) -> String {
    let secs = t.millis().div_euclid(1000);
    let day = secs.rem_euclid(86_400);
    format!("{} {:02}:{:02}:{:02} UTC", crate::domain::units::civil_date(secs.div_euclid(86_400)), day / 3600, day % 3600 / 60, day % 60)
}
