//! One reason a rollout may not leave its stage yet, in words an approver can act on. A leaf:
//! the readiness rules produce blockers, the state machine refuses or overrides with them, and
//! the pages show them.

use super::gates::Verdict;
use super::units::Span;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One reason the rollout may not leave its stage yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocker {
    SoakRemaining {
        remaining: Span,
    },
    ChecklistIncomplete {
        open: u32,
        total: u32,
    },
    BaselineMissing,
    TestSuiteNotPassed {
        suite: String,
        /// Passing tests in the newest report; `None` before any report.
        passed: Option<u32>,
        required: u32,
        #[serde(default)]
        failed: u32,
    },
    /// A success criterion is failing or not yet proven.
    GateNotPassed {
        criterion: String,
        verdict: Verdict,
        explanation: String,
    },
    /// The guard loop asked for a review that nobody has acknowledged.
    AlertOpen {
        id: i64,
        message: String,
    },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::SoakRemaining { remaining } => write!(f, "soak time remaining: {remaining}"),
            Blocker::ChecklistIncomplete { open, total } => {
                write!(f, "checklist: {open} of {total} items still open")
            }
            Blocker::BaselineMissing => f.write_str("the baseline has not been recorded"),
            Blocker::TestSuiteNotPassed { suite, passed: None, required, .. } => {
                write!(f, "{suite} tests: no result reported ({required} must pass)")
            }
            Blocker::TestSuiteNotPassed { suite, passed: Some(p), required, failed: 0 } => {
                write!(f, "{suite} tests: {p}/{required} passing")
            }
            Blocker::TestSuiteNotPassed { suite, passed: Some(p), required, failed } => {
                write!(f, "{suite} tests: {p}/{required} passing, {failed} failing")
            }
            Blocker::GateNotPassed { criterion, verdict, explanation } => {
                write!(f, "{criterion}: {} — {explanation}", verdict.label())
            }
            Blocker::AlertOpen { message, .. } => write!(f, "open alert: {message}"),
        }
    }
}
