//! The rules of a plan that span fields (stage order, percentages, checklists, the metric
//! sources), checked once the file has parsed.

use super::parse::PlanError;
use super::{ChecklistSection, MAX_STAGES, Plan};
use crate::domain::units::Percentage;

impl Plan {
    /// The rules that span fields; single values were already checked while parsing.
    pub(super) fn problems(&self) -> Vec<PlanError> {
        let mut out = Vec::new();
        let mut bad = |field: String, message: String| out.push(PlanError { line: None, column: None, field: Some(field), message });

        if !is_slug(&self.key) {
            bad("key".into(), format!("`{}` must be lowercase letters, digits and dashes", self.key));
        }
        if self.name.trim().is_empty() {
            bad("name".into(), "must not be empty".into());
        }
        if !is_slug_underscored(&self.flag.key) {
            bad("flag.key".into(), format!("`{}` must be lowercase letters, digits and underscores", self.flag.key));
        }
        if self.flag.env_prefix.is_empty()
            || !self.flag.env_prefix.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            bad("flag.env_prefix".into(), format!("`{}` must be uppercase letters, digits and underscores", self.flag.env_prefix));
        }
        if self.approvals.required == 0 || self.approvals.required > 10 {
            bad("approvals.required".into(), format!("{} approvers is not allowed (1 to 10)", self.approvals.required));
        }

        if let Some(t) = &self.traffic {
            if !(t.uploads_per_hour.is_finite() && t.uploads_per_hour > 0.0) {
                bad("traffic.uploads_per_hour".into(), format!("{} must be a positive number of uploads an hour", t.uploads_per_hour));
            }
            if t.error_rate.is_some_and(|e| e.get() > t.failure_rate.get()) {
                bad("traffic.error_rate".into(), "must not exceed traffic.failure_rate: errors are failures too".into());
            }
        }

        if let Some(m) = &self.matrix {
            for (field, empty) in
                [("file_types", m.file_types.is_empty()), ("sizes_mb", m.sizes_mb.is_empty()), ("providers", m.providers.is_empty())]
            {
                if empty {
                    bad(
                        format!("matrix.{field}"),
                        "must list at least one value: every cell of the matrix is a combination of them".into(),
                    );
                }
            }
            for (field, values) in [("file_types", &m.file_types), ("providers", &m.providers)] {
                let mut seen = std::collections::HashSet::new();
                if let Some(twice) = values.iter().find(|v| !seen.insert(v.as_str())) {
                    bad(format!("matrix.{field}"), format!("lists “{twice}” twice: each value once, or its cells would count twice"));
                }
            }
            if m.sizes_mb.first() == Some(&0) {
                bad("matrix.sizes_mb".into(), "each size is the upper bound of a size class, at least 1 MB".into());
            }
            if m.sizes_mb.windows(2).any(|w| w[0] >= w[1]) {
                bad("matrix.sizes_mb".into(), "must be in ascending order, each size once: each is the upper bound of a size class".into());
            }
            if m.min_per_cell == 0 {
                bad("matrix.min_per_cell".into(), "must be at least 1: a cell with no uploads has not been seen working".into());
            }
        }

        let g = &self.guardrails;
        if g.interval.secs() < 1 || g.interval.secs() > 300 {
            bad("guardrails.interval".into(), format!("{} must be between 1s and 5m: the guard must look often", g.interval));
        }
        if g.min_sample == 0 {
            bad("guardrails.min_sample".into(), "must be at least 1, or one upload could roll back on memory".into());
        }
        let [low, high] = g.manual_review.success_band;
        if low >= high {
            bad(
                "guardrails.manual_review.success_band".into(),
                format!("the band [{low}, {high}) is empty: the first bound must be lower"),
            );
        }
        if g.auto_rollback.success_rate_below > low {
            bad(
                "guardrails.auto_rollback.success_rate_below".into(),
                format!("{} is above the manual-review band's lower bound {low}", g.auto_rollback.success_rate_below),
            );
        }

        if self.stages.len() < 2 {
            bad("stages".into(), format!("a plan needs at least 2 stages, found {}", self.stages.len()));
        }
        if self.stages.len() > MAX_STAGES {
            bad("stages".into(), format!("a plan has at most {MAX_STAGES} stages, found {}", self.stages.len()));
        }
        let mut seen_names = std::collections::HashSet::new();
        let mut previous: Option<Percentage> = None;
        for (i, stage) in self.stages.iter().enumerate() {
            let at = |field: &str| format!("stages[{i}].{field}");
            if stage.name.trim().is_empty() {
                bad(at("name"), "must not be empty".into());
            } else if !seen_names.insert(stage.name.as_str()) {
                bad(at("name"), format!("`{}` is already the name of an earlier stage", stage.name));
            }
            let flag = stage.flag;
            if !flag.enabled && flag.percentage != Percentage::ZERO {
                bad(at("flag.percentage"), format!("is {} but the flag is off (enabled = false); use 0", flag.percentage));
            }
            let served = if flag.enabled { flag.percentage } else { Percentage::ZERO };
            if let Some(prev) = previous
                && served < prev
            {
                bad(at("flag.percentage"), format!("{served} is lower than the previous stage's {prev}; stages only widen the rollout"));
            }
            previous = Some(served);
            if flag.enabled && stage.criteria.is_none() {
                bad(at("criteria"), "is required when the flag is on in this stage".into());
            }
            if let Some(c) = &stage.criteria
                && c.min_events == 0
            {
                bad(at("criteria.min_events"), "must be at least 1".into());
            }
            let relative = stage.criteria.as_ref().map_or([None, None], |c| [c.failures_vs_control_max, c.latency_vs_control_max]);
            for (field, points) in ["failures_vs_control_max", "latency_vs_control_max"].into_iter().zip(relative) {
                let Some(points) = points else { continue };
                let field = at(&format!("criteria.{field}"));
                if !(points.is_finite() && (0.0..=100.0).contains(&points)) {
                    bad(field, format!("{points} is not a number of percentage points (0 to 100)"));
                } else if !(flag.enabled && flag.percentage.get() > 0 && flag.percentage.get() < 100) {
                    bad(field, format!("needs a control arm, and the flag is {} in this stage", flag));
                }
            }
            if stage.requires_matrix && self.matrix.is_none() {
                bad(at("requires_matrix"), "is set but the plan has no [matrix]".into());
            }
            // A stage whose source cannot say which cell an upload belongs to would show the
            // matrix empty and never pass.
            #[cfg(feature = "ssr")]
            if stage.requires_matrix && !self.reads_cells(super::super::units::StageIndex(i as u32)) {
                bad(
                    at("requires_matrix"),
                    "this stage reads Prometheus without metrics_source.matrix_labels, so the end-to-end matrix's \
                     cells cannot be counted: name the series' file type, size and provider labels \
                     (matrix_labels = { file_type = \"…\", size_mb = \"…\", provider = \"…\" }), \
                     or give the stage metrics_source = \"events\""
                        .into(),
                );
            }
            if stage.requires_performance_validated && self.expected_improvements.is_none() {
                bad(at("requires_performance_validated"), "is set but the plan has no [expected_improvements]".into());
            }
            for (j, suite) in stage.test_suites.iter().enumerate() {
                if suite.name.trim().is_empty() {
                    bad(at(&format!("test_suites[{j}].name")), "must not be empty".into());
                }
                if suite.tests == 0 {
                    bad(at(&format!("test_suites[{j}].tests")), "must be at least 1".into());
                }
            }
            check_sections(&stage.checklist, &|f| at(&format!("checklist{f}")), &mut bad);
            for (k, section) in stage.checklist.iter().enumerate() {
                if section.every.is_some() {
                    bad(
                        at(&format!("checklist[{k}].every")),
                        "a stage's checklist is ticked once; `every` is for recurring_checklists".into(),
                    );
                }
            }
        }
        if let Some(last) = self.stages.last()
            && !(last.flag.enabled && last.flag.percentage == Percentage::FULL)
        {
            bad(format!("stages[{}].flag", self.stages.len() - 1), "the last stage must serve the flag on for 100%".into());
        }
        if let Some(first) = self.stages.first()
            && first.flag.enabled
        {
            bad("stages[0].flag.enabled".into(), "the first stage must have the flag off (it is where rollbacks land)".into());
        }
        check_sections(&self.recurring_checklists, &|f| format!("recurring_checklists{f}"), &mut bad);
        #[cfg(feature = "ssr")]
        {
            for (field, message) in self.metrics_source.iter().flat_map(|s| s.problems()) {
                bad(format!("metrics_source.{field}"), message);
            }
            for (i, stage) in self.stages.iter().enumerate() {
                if let Some(crate::domain::source::StageSource::Prometheus(source)) = &stage.metrics_source {
                    for (field, message) in source.problems() {
                        bad(format!("stages[{i}].metrics_source.{field}"), message);
                    }
                }
            }
        }
        out
    }
}

fn check_sections(sections: &[ChecklistSection], at: &dyn Fn(&str) -> String, bad: &mut impl FnMut(String, String)) {
    for (k, section) in sections.iter().enumerate() {
        if section.title.trim().is_empty() {
            bad(at(&format!("[{k}].title")), "must not be empty".into());
        }
        if section.items.is_empty() {
            bad(at(&format!("[{k}].items")), "a section needs at least one item".into());
        }
        for (n, item) in section.items.iter().enumerate() {
            if item.trim().is_empty() {
                bad(at(&format!("[{k}].items[{n}]")), "must not be empty".into());
            }
        }
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_slug_underscored(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
