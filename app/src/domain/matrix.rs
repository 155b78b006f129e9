//! The end-to-end matrix the seeds ask of the final week: every file type × size class ×
//! provider of the plan's `[matrix]` seen working on the treatment path. Each cell holds the
//! stage's treatment uploads of that combination, its success rate with an anytime-valid
//! interval, and its p95 latency; the matrix is a gate of a stage that `requires_matrix`.
//!
//! A cell passes once it has the plan's `min_per_cell` uploads and its observed failures are
//! within the stage's allowed share; it fails when they are proven above it. The proof uses a
//! rate confidence sequence tuned for a cell's size (tightest near ten times `min_per_cell`),
//! with the gate's α shared among the cells (Bonferroni), so that a matrix of 48 healthy cells
//! does not fail one by chance, while 10 failures in a cell's 20 uploads do. A cell between —
//! failing more than allowed, not yet proven — waits for more uploads. The matrix is a check
//! that every combination works, not a per-cell estimate to the gate's precision.

use super::gates::{ALPHA_GATE, Criterion, Gate, Judged, Verdict};
use super::plan::Matrix;
use super::receipt::Receipt;
use super::sequential::RateSequence;
use super::stats::Stats;
use super::units::thousands;
use serde::{Deserialize, Serialize};

/// One combination's evidence and verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub file_type: String,
    pub size_mb: u32,
    pub provider: String,
    pub uploads: u64,
    pub failures: u64,
    /// The success rate's anytime-valid interval, in percent (`None` without uploads).
    pub success_interval: Option<(f64, f64)>,
    pub p95_ms: Option<f64>,
    pub verdict: Verdict,
}

impl Cell {
    /// The success rate in percent.
    pub fn success_pct(&self) -> Option<f64> {
        (self.uploads > 0).then(|| (self.uploads - self.failures) as f64 * 100.0 / self.uploads as f64)
    }

    /// "csv · 100 MB · glm".
    pub fn name(&self) -> String {
        format!("{} · {} MB · {}", self.file_type, self.size_mb, self.provider)
    }
}

/// The matrix of a stage: its cells in the plan's order (file type, then size, then provider).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixView {
    pub file_types: Vec<String>,
    pub sizes_mb: Vec<u32>,
    pub providers: Vec<String>,
    pub cells: Vec<Cell>,
    pub min_per_cell: u32,
    /// The stage's success rate a cell is held to, in percent.
    pub success_min: f64,
    /// Treatment uploads of combinations the plan does not list (another provider, file type).
    pub outside: u64,
}

/// The treatment's stats of one combination: (file type, size class in MB, provider, stats).
pub type CellRow = (String, u32, String, Stats);

impl MatrixView {
    /// Judges every cell of `matrix` on `rows` (the stage's treatment uploads by combination;
    /// rows of the same combination are merged) against the stage's `success_min` percent.
    pub fn judge(matrix: &Matrix, success_min: f64, rows: &[CellRow]) -> MatrixView {
        let count = matrix.file_types.len() * matrix.sizes_mb.len() * matrix.providers.len();
        let p0 = 1.0 - success_min / 100.0;
        let sequence = cell_sequence(p0, count, matrix.min_per_cell);
        let mut outside = 0;
        let mut merged: std::collections::HashMap<(&str, u32, &str), Stats> = std::collections::HashMap::new();
        for (file_type, size, provider, stats) in rows {
            if matrix.lists(file_type, *size, provider) {
                merged.entry((file_type.as_str(), *size, provider.as_str())).or_default().merge(stats);
            } else {
                outside += stats.count();
            }
        }
        let mut cells = Vec::with_capacity(count);
        for file_type in &matrix.file_types {
            for size in &matrix.sizes_mb {
                for provider in &matrix.providers {
                    let stats = merged.get(&(file_type.as_str(), *size, provider.as_str())).cloned().unwrap_or_default();
                    let (n, failures) = (stats.count(), stats.error + stats.timeout);
                    let within = failures as f64 <= p0 * n as f64;
                    let verdict = if n > 0 && sequence.proves_above(failures, n, p0) {
                        Verdict::Fail
                    } else if n >= u64::from(matrix.min_per_cell) && within {
                        Verdict::Pass
                    } else {
                        Verdict::Inconclusive
                    };
                    let success_interval = (n > 0).then(|| {
                        let (lo, hi) = sequence.interval(failures, n);
                        (100.0 - hi * 100.0, 100.0 - lo * 100.0)
                    });
                    cells.push(Cell {
                        file_type: file_type.clone(),
                        size_mb: *size,
                        provider: provider.clone(),
                        uploads: n,
                        failures,
                        success_interval,
                        p95_ms: stats.latency.quantile(0.95),
                        verdict,
                    });
                }
            }
        }
        MatrixView {
            file_types: matrix.file_types.clone(),
            sizes_mb: matrix.sizes_mb.clone(),
            providers: matrix.providers.clone(),
            cells,
            min_per_cell: matrix.min_per_cell,
            success_min,
            outside,
        }
    }

    pub fn cell(&self, file_type: &str, size_mb: u32, provider: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.file_type == file_type && c.size_mb == size_mb && c.provider == provider)
    }

    fn with(&self, verdict: Verdict) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(move |c| c.verdict == verdict)
    }

    /// The matrix as one of the stage's gates: it passes when every cell does, fails when any
    /// cell fails, and names the cells that hold it back.
    pub fn gate(&self, judged: Judged) -> Gate {
        let total = self.cells.len();
        let passing = self.with(Verdict::Pass).count();
        let failing: Vec<&Cell> = self.with(Verdict::Fail).collect();
        let short: Vec<&Cell> = self.with(Verdict::Inconclusive).collect();
        let verdict = if !failing.is_empty() {
            Verdict::Fail
        } else if short.is_empty() && total > 0 {
            Verdict::Pass
        } else {
            Verdict::Inconclusive
        };
        let list = |cells: &[&Cell], what: &dyn Fn(&Cell) -> String| {
            let mut named: Vec<String> = cells.iter().take(3).map(|c| format!("{} ({})", c.name(), what(c))).collect();
            if cells.len() > 3 {
                named.push(format!("{} more", cells.len() - 3));
            }
            named.join(", ")
        };
        let mut explanation = format!("{passing} of {total} cells pass");
        if !failing.is_empty() {
            let words = |c: &Cell| {
                format!("{:.1}% success of {}, proven below {}%", c.success_pct().unwrap_or(0.0), thousands(c.uploads), self.success_min)
            };
            explanation.push_str(&format!("; {} failing: {}", failing.len(), list(&failing, &words)));
        }
        let (few, unsure): (Vec<&Cell>, Vec<&Cell>) = short.iter().partition(|c| c.uploads < u64::from(self.min_per_cell));
        if !few.is_empty() {
            let words = |c: &Cell| format!("{} of {}", c.uploads, self.min_per_cell);
            explanation.push_str(&format!("; {} short of {} uploads: {}", few.len(), self.min_per_cell, list(&few, &words)));
        }
        if !unsure.is_empty() {
            let words = |c: &Cell| format!("{:.1}% success of {}", c.success_pct().unwrap_or(0.0), thousands(c.uploads));
            explanation.push_str(&format!("; {} below {}% but not proven: {}", unsure.len(), self.success_min, list(&unsure, &words)));
        }
        if self.outside > 0 {
            explanation.push_str(&format!("; {} uploads outside the plan's matrix", thousands(self.outside)));
        }
        // The receipt names the weakest cell's evidence: the one the verdict rests on.
        let weakest = failing.first().or(short.first()).copied().or_else(|| self.cells.iter().min_by_key(|c| c.uploads));
        let p0 = 1.0 - self.success_min / 100.0;
        let sequence = cell_sequence(p0, total, self.min_per_cell);
        Gate {
            criterion: Criterion::Matrix,
            verdict,
            observed: Some(passing as f64),
            interval: None,
            threshold: total as f64,
            sample: self.cells.iter().map(|c| c.uploads).sum(),
            min_sample: u64::from(self.min_per_cell),
            explanation,
            versus_control: None,
            more_uploads: None,
            receipt: weakest.map(|c| Receipt::of_sequence(&sequence, c.failures, c.uploads, p0, judged.from, judged.to)),
        }
    }
}

/// The sequence a cell's failures are judged with: the gate's α shared among `cells`, tightest
/// near ten times the uploads a cell needs.
pub fn cell_sequence(p0: f64, cells: usize, min_per_cell: u32) -> RateSequence {
    RateSequence::tuned(p0, ALPHA_GATE / cells.max(1) as f64, 10.0 * f64::from(min_per_cell.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use crate::domain::stats::treatment_upload;
    use crate::domain::units::Timestamp;

    fn matrix() -> Matrix {
        Matrix {
            file_types: vec!["csv".into(), "json".into()],
            sizes_mb: vec![1, 100],
            providers: vec!["kimi".into(), "glm".into()],
            min_per_cell: 20,
        }
    }

    fn stats(successes: u64, failures: u64, latency_ms: f64) -> Stats {
        let mut s = Stats::default();
        (0..successes).for_each(|_| s.add(&treatment_upload(Outcome::Success, latency_ms, 10.0, false)));
        (0..failures).for_each(|_| s.add(&treatment_upload(Outcome::Timeout, latency_ms, 10.0, false)));
        s
    }

    fn row(file_type: &str, size: u32, provider: &str, s: Stats) -> CellRow {
        (file_type.into(), size, provider.into(), s)
    }

    const JUDGED: Judged = Judged { from: Timestamp(0), to: Timestamp(60_000) };

    #[test]
    fn every_cell_of_the_plan_is_judged_and_empty_ones_are_shown_as_such() {
        // Hand-computed: csv·1·kimi has 30 + 20 = 50 uploads over two rows with 1 failure (98%);
        // json·100·glm 5 uploads (short of 20); a provider outside the plan counts apart.
        let rows = [
            row("csv", 1, "kimi", stats(30, 0, 100.0)),
            row("csv", 1, "kimi", stats(19, 1, 300.0)),
            row("json", 100, "glm", stats(5, 0, 900.0)),
            row("csv", 1, "openai", stats(7, 0, 100.0)),
        ];
        let view = MatrixView::judge(&matrix(), 98.0, &rows);
        assert_eq!(view.cells.len(), 8);
        let names: Vec<String> = view.cells.iter().map(Cell::name).collect();
        assert_eq!(names[..3], ["csv · 1 MB · kimi", "csv · 1 MB · glm", "csv · 100 MB · kimi"]);
        let csv = view.cell("csv", 1, "kimi").unwrap();
        assert_eq!((csv.uploads, csv.failures, csv.verdict), (50, 1, Verdict::Pass));
        assert_eq!(csv.success_pct(), Some(98.0));
        // p95 of 30 at 100 ms and 20 at 300 ms is in the 300 ms bin (within the sketch's 1%).
        assert!((csv.p95_ms.unwrap() - 300.0).abs() <= 3.0, "{csv:?}");
        let (lo, hi) = csv.success_interval.unwrap();
        assert!(lo < 98.0 && hi > 98.0 && hi <= 100.0, "{csv:?}");
        let empty = view.cell("csv", 1, "glm").unwrap();
        assert_eq!((empty.uploads, empty.success_interval, empty.p95_ms, empty.verdict), (0, None, None, Verdict::Inconclusive));
        assert_eq!(view.cell("json", 100, "glm").unwrap().verdict, Verdict::Inconclusive);
        assert_eq!(view.outside, 7);
        let gate = view.gate(JUDGED);
        assert_eq!(
            (gate.criterion, gate.verdict, gate.observed, gate.threshold),
            (Criterion::Matrix, Verdict::Inconclusive, Some(1.0), 8.0)
        );
        assert!(
            gate.explanation.starts_with("1 of 8 cells pass; 7 short of 20 uploads: csv · 1 MB · glm (0 of 20), csv · 100 MB · kimi (0 of 20), csv · 100 MB · glm (0 of 20), 4 more"),
            "{}",
            gate.explanation
        );
        assert!(gate.explanation.ends_with("; 7 uploads outside the plan's matrix"), "{}", gate.explanation);
    }

    #[test]
    fn a_cell_fails_only_on_proof_and_the_matrix_passes_when_every_cell_does() {
        let full = |bad: u64| -> Vec<CellRow> {
            let m = matrix();
            let mut rows = Vec::new();
            for f in &m.file_types {
                for s in &m.sizes_mb {
                    for p in &m.providers {
                        let failures = if (f.as_str(), *s, p.as_str()) == ("json", 100, "glm") { bad } else { 0 };
                        rows.push(row(f, *s, p, stats(40 - failures, failures, 100.0)));
                    }
                }
            }
            rows
        };
        let healthy = MatrixView::judge(&matrix(), 98.0, &full(0));
        let gate = healthy.gate(JUDGED);
        assert_eq!((gate.verdict, gate.explanation.as_str()), (Verdict::Pass, "8 of 8 cells pass"));
        // 2 failures in 40 (5%) against 2% allowed: not proof, with α shared by eight cells, and
        // not within the allowance either: the cell waits for more uploads.
        let unsure = MatrixView::judge(&matrix(), 98.0, &full(2));
        assert_eq!(unsure.cell("json", 100, "glm").unwrap().verdict, Verdict::Inconclusive);
        assert!(unsure.gate(JUDGED).explanation.ends_with("; 1 below 98% but not proven: json · 100 MB · glm (95.0% success of 40)"));
        // Half of a cell's 20 uploads failing is proof, however small the cell.
        let mut rows = full(0);
        rows.retain(|r| (r.0.as_str(), r.1, r.2.as_str()) != ("csv", 1, "kimi"));
        rows.push(row("csv", 1, "kimi", stats(10, 10, 100.0)));
        assert_eq!(MatrixView::judge(&matrix(), 98.0, &rows).cell("csv", 1, "kimi").unwrap().verdict, Verdict::Fail);
        // 20 in 40: proven.
        let broken = MatrixView::judge(&matrix(), 98.0, &full(20));
        assert_eq!(broken.cell("json", 100, "glm").unwrap().verdict, Verdict::Fail);
        let gate = broken.gate(JUDGED);
        assert_eq!(gate.verdict, Verdict::Fail);
        assert!(
            gate.explanation.contains("1 failing: json · 100 MB · glm (50.0% success of 40, proven below 98%)"),
            "{}",
            gate.explanation
        );
        // The receipt is the failing cell's, by the shared-α sequence.
        let r = gate.receipt.unwrap();
        assert_eq!((r.bad, r.events, r.alpha), (20, 40, ALPHA_GATE / 8.0));
        assert!(cell_sequence(0.02, 8, 20).proves_above(r.bad, r.events, 0.02));
    }
}
