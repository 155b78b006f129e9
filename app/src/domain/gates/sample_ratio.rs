//! The sample-ratio row among the gates: the stage's units (or uploads) per arm against the
//! split the flag serves, judged by the sequential SRM test.

use super::{Criterion, Gate, Verdict, pct};
use crate::domain::plan::{Guardrails, StageFlag};
use crate::domain::receipt::{Method, RULE_VERSION, Receipt};
use crate::domain::sequential::{srm_ln_bayes_factor, srm_p_value};
use crate::domain::stats::StageRows;
use crate::domain::units::{Span, Timestamp, thousands};
use serde::{Deserialize, Serialize};

/// A sample-ratio mismatch is declared below this anytime-valid p-value.
pub const ALPHA_SAMPLE_RATIO: f64 = 0.001;

/// The stage's units per arm against the share the flag serves the treatment: when units are
/// bucketed as planned, each lands in the treatment with that chance, so a split far from it
/// means the assignment or the reporting is broken (a client that ignores the flag, an arm
/// whose events are dropped) and no comparison of the arms can be trusted. Judged with the
/// sequential test of Lindon & Malek ([`srm_p_value`]), valid at every look.
///
/// What is counted: distinct units where the events of both arms name them (`unit`), since the
/// flag splits units; otherwise uploads, which follow the same split when every unit sends alike. Counting
/// uploads of units that send unevenly overstates the evidence (a busy unit's uploads all go
/// one way), so a plan whose services can name the unit should.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRatio {
    /// Uploads per arm.
    pub treatment: u64,
    pub control: u64,
    /// Distinct units per arm (treatment, control) among the uploads that name one: what is
    /// judged when there are any.
    #[serde(default)]
    pub units: Option<(u64, u64)>,
    /// The flag's percentage for the stage.
    pub planned_pct: f64,
    pub p_value: f64,
    /// Uploads of the stage's first `settle` are not counted (see [`sample_ratio`]).
    #[serde(default)]
    pub settle: Span,
    /// The start of the first minute counted.
    #[serde(default)]
    pub from: Timestamp,
}

impl SampleRatio {
    /// The check of the uploads of a stage serving `planned_pct`% of units the treatment;
    /// `None` at 0% and 100%, where there is no split to check.
    pub fn check(treatment: u64, control: u64, planned_pct: f64) -> Option<SampleRatio> {
        if !(planned_pct > 0.0 && planned_pct < 100.0) {
            return None;
        }
        let split = SampleRatio { treatment, control, units: None, planned_pct, p_value: 1.0, settle: Span::ZERO, from: Timestamp(0) };
        Some(SampleRatio { p_value: srm_p_value(&split.judged_counts(), &split.planned()), ..split })
    }

    /// The same check on the distinct units per arm `(treatment, control)`, when every arm that
    /// has uploads names units in them. When an arm's uploads name none (the new code path
    /// sends `unit`, the old one does not), the unit counts say nothing of the split, and the
    /// uploads are judged; an arm with no uploads yet has no units either, and that is no
    /// reason to stop counting units.
    pub fn with_units(self, units: Option<(u64, u64)>) -> SampleRatio {
        let names = |units: u64, uploads: u64| units > 0 || uploads == 0;
        let units = units.filter(|&(t, c)| t + c > 0 && names(t, self.treatment) && names(c, self.control));
        let split = SampleRatio { units, ..self };
        SampleRatio { p_value: srm_p_value(&split.judged_counts(), &split.planned()), ..split }
    }

    /// The counts judged, treatment first: units when counted, else uploads.
    fn judged_counts(&self) -> [u64; 2] {
        let (t, c) = self.units.unwrap_or((self.treatment, self.control));
        [t, c]
    }

    fn planned(&self) -> [f64; 2] {
        [self.planned_pct / 100.0, 1.0 - self.planned_pct / 100.0]
    }

    /// "units" or "uploads": what the check counts.
    pub fn counted(&self) -> &'static str {
        if self.units.is_some() { "units" } else { "uploads" }
    }

    /// What the check was made from, judged at `to`: the counts, the planned share, the log
    /// Bayes factor and its boundary.
    pub fn receipt(&self, to: Timestamp) -> Receipt {
        let [treatment, control] = self.judged_counts();
        Receipt {
            method: if self.units.is_some() { Method::UnitRatio } else { Method::SampleRatio },
            rule_version: RULE_VERSION,
            bad: treatment,
            events: treatment + control,
            threshold_rate: self.planned_pct / 100.0,
            alpha: ALPHA_SAMPLE_RATIO,
            statistic: srm_ln_bayes_factor(&self.judged_counts(), &self.planned()),
            boundary: (1.0 / ALPHA_SAMPLE_RATIO).ln(),
            interval: None,
            alternative: None,
            control: None,
            from: self.from,
            to,
        }
    }

    /// "p = 0.42", "p = 3.1e-7", "p < 1e-12".
    pub fn p_text(&self) -> String {
        match self.p_value {
            p if p >= 0.01 => format!("p = {p:.2}"),
            p if p >= 1e-12 => format!("p = {p:.1e}"),
            _ => "p < 1e-12".into(),
        }
    }

    pub fn mismatch(&self) -> bool {
        self.p_value < ALPHA_SAMPLE_RATIO
    }

    /// The treatment's share of what is counted, in percent.
    pub fn observed_pct(&self) -> Option<f64> {
        let [treatment, control] = self.judged_counts();
        let n = treatment + control;
        (n > 0).then(|| treatment as f64 * 100.0 / n as f64)
    }

    /// "12 treatment and 1,188 control uploads: 1.00% treatment where the flag serves 1%" (or
    /// "… units (of 40 and 3,900 uploads): …"), and from when they count when the stage's first
    /// minutes are left out.
    pub fn counts(&self) -> String {
        let split = self.observed_pct().map_or_else(|| format!("no {} yet", self.counted()), |o| format!("{} treatment", pct(o)));
        let settled =
            if self.settle > Span::ZERO { format!(" (counted from {} after the stage began)", self.settle) } else { String::new() };
        let [treatment, control] = self.judged_counts();
        let uploads = match self.units {
            Some(_) => format!(" (of {} and {} uploads)", thousands(self.treatment), thousands(self.control)),
            None => String::new(),
        };
        format!(
            "{} treatment and {} control {}{uploads}{settled}: {split} where the flag serves {}%",
            thousands(treatment),
            thousands(control),
            self.counted(),
            self.planned_pct
        )
    }

    /// The row shown among the gates, judged at `to`: it fails on a mismatch and passes
    /// otherwise (a check that finds nothing wrong has nothing left to prove).
    pub fn gate(&self, to: Timestamp) -> Gate {
        let (verdict, judgement) = if self.mismatch() {
            (Verdict::Fail, format!("mismatch ({}, below {ALPHA_SAMPLE_RATIO}): compare the arms only once it is explained", self.p_text()))
        } else {
            (Verdict::Pass, format!("no mismatch ({})", self.p_text()))
        };
        let [treatment, control] = self.judged_counts();
        Gate {
            criterion: Criterion::SampleRatio,
            verdict,
            observed: self.observed_pct(),
            interval: None,
            threshold: self.planned_pct,
            sample: treatment + control,
            min_sample: 0,
            explanation: format!("{}; {judgement}", self.counts()),
            versus_control: None,
            more_uploads: None,
            receipt: Some(self.receipt(to)),
        }
    }
}

/// The first minute the sample-ratio check of a stage that began at `entered` counts: the first
/// whole minute from the plan's `sample_ratio_settle` after it began. Until then, clients that
/// cache the flag still send at the stage before's split, and that lag would read as a mismatch
/// that the anytime p-value keeps in the stage's counts long after the caches refreshed.
pub fn sample_ratio_from(rails: &Guardrails, entered: Timestamp) -> Timestamp {
    let settle = rails.manual_review.sample_ratio_settle;
    Timestamp((entered.millis() + settle.millis() + 59_999).div_euclid(60_000) * 60_000)
}

/// The sample-ratio check of a stage that began at `entered` and serves its flag as `served`,
/// when the plan asks for it and the flag splits traffic: the uploads of `rows` from
/// [`sample_ratio_from`] (its `from`). The caller adds the distinct units seen since then with
/// [`SampleRatio::with_units`], read only when the check applies.
pub fn sample_ratio(rails: &Guardrails, served: StageFlag, rows: &StageRows, entered: Timestamp) -> Option<SampleRatio> {
    if !rails.manual_review.on_sample_ratio_mismatch || !served.enabled {
        return None;
    }
    let from = sample_ratio_from(rails, entered);
    let (treatment, control) = rows.uploads_from(from);
    let check = SampleRatio::check(treatment, control, f64::from(served.percentage.get()))?;
    Some(SampleRatio { settle: rails.manual_review.sample_ratio_settle, from, ..check })
}
