//! Reading a plan file: TOML into a [`Plan`], each problem a [`PlanError`] placed by line and
//! column or by field.

use super::{MAX_PLAN_BYTES, Plan};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One problem found in a plan file: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanError {
    /// 1-based line and column, when the problem sits at one place in the text.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field's path, such as `stages[2].flag.percentage`, when known.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(column) = self.column {
                write!(f, ", column {column}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a plan file, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Plan {
    /// Parses and validates a plan file.
    pub fn from_toml(source: &str) -> Result<Plan, PlanErrors> {
        if source.len() > MAX_PLAN_BYTES {
            let message = format!(
                "the file is {} bytes; a plan is at most {} bytes",
                crate::domain::units::thousands(source.len() as u64),
                crate::domain::units::thousands(MAX_PLAN_BYTES as u64)
            );
            return Err(PlanErrors(vec![PlanError { line: None, column: None, field: None, message }]));
        }
        let plan: Plan = toml::from_str(source).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_and_column(source, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            PlanErrors(vec![PlanError { line, column, field: None, message: e.message().trim().to_string() }])
        })?;
        let problems = plan.problems();
        if problems.is_empty() { Ok(plan) } else { Err(PlanErrors(problems)) }
    }
}

fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
