//! Windows over the rollups: each arm in total and per time step, a stage's evidence from its
//! source (the event store or Prometheus), its minutes, its groups and its matrix cells.

use super::Metrics;
use crate::store::{Baseline, RollupFilter, StageSpan, StoreError};
use app::domain::event::Variant;
use app::domain::matrix::CellRow;
use app::domain::plan::Plan;
use app::domain::source::Evidence;
use app::domain::stats::{StageRows, Stats, Summary};
use app::domain::units::{Span, Timestamp};
use app::error::AppError;
use serde::Serialize;
use std::sync::Arc;

/// The longest window a read may ask for: every rollup of it is read (a window of a rollout's
/// whole history was a way to make the server read all of them).
pub const MAX_WINDOW: Span = Span::from_secs(31 * 86_400);

/// A window's numbers: each arm in total and per time step, and the baseline beside them.
#[derive(Clone, Debug, Serialize)]
pub struct WindowView {
    pub from: Timestamp,
    pub to: Timestamp,
    pub step_minutes: i64,
    pub control: Summary,
    pub treatment: Summary,
    pub series: Vec<SeriesPoint>,
    pub baseline: Option<Baseline>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeriesPoint {
    pub at: Timestamp,
    pub control: Summary,
    pub treatment: Summary,
}

/// Most providers, and most file types, [`Metrics::groups`] shows one by one.
const MAX_GROUPS: usize = 12;

/// One provider's or file type's uploads, each arm's ([`Metrics::groups`]).
pub struct Group {
    /// "provider kimi", "file type csv".
    pub label: String,
    pub treatment: Stats,
    pub control: Stats,
}

/// A stage's span whose figures the metric source could not vouch for when read, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unvouched {
    pub stage: i32,
    pub from: Timestamp,
    pub to: Timestamp,
    pub problem: String,
}

impl Metrics {
    /// Control and treatment over `[from, to)` (at most [`MAX_WINDOW`]), with a series of at
    /// most ~240 points.
    pub async fn window(&self, rollout_id: i64, from: Timestamp, to: Timestamp, filter: &RollupFilter) -> Result<WindowView, AppError> {
        if from >= to {
            return Err(AppError::invalid("from", "must be before `to`"));
        }
        if to.millis() - from.millis() > MAX_WINDOW.millis() {
            return Err(AppError::invalid("from", format!("a window spans at most {} days", MAX_WINDOW.secs() / 86_400)));
        }
        let rows = self.store.window_rows(rollout_id, from, to, filter).await?;
        let rows = rows.into_iter().map(|(key, stats)| (key.minute, key.variant, stats)).collect();
        self.window_of(rollout_id, from, to, rows).await
    }

    /// Like [`Metrics::window`], over the stage spans in `[from, to)` each read from its own
    /// source (the event store or a Prometheus pull of the whole span, which the guard's pull
    /// of the current stage shares): the charts of a rollout that reads Prometheus.
    pub async fn window_by_stage(
        &self,
        plan: &Plan,
        rollout_id: i64,
        spans: &[StageSpan],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(WindowView, Vec<Unvouched>), AppError> {
        let (mut rows, mut unvouched) = (Vec::new(), Vec::new());
        // Whole minutes, the one `from` falls in included (as the event store's window reads).
        let first_minute = Timestamp(from.millis().div_euclid(60_000) * 60_000);
        for span in spans.iter().filter(|s| s.from < to && s.to.is_none_or(|end| end > from)) {
            let end = span.to.unwrap_or(to).min(to);
            // A Prometheus span is pulled from its start (its kept tally's key); the event store
            // is read for the window's part only.
            let reads_prometheus = plan.source_for(app::domain::units::StageIndex(span.stage.max(0) as u32)).is_some();
            let start = if reads_prometheus { span.from } else { span.from.max(first_minute) };
            let evidence = self.stage_evidence(plan, rollout_id, span.stage, start, Timestamp(end.millis() + 60_000)).await?;
            if let Some(problem) = evidence.problem {
                unvouched.push(Unvouched { stage: span.stage, from: span.from.max(from), to: end, problem: problem.to_string() });
            }
            let StageRows { control, treatment } = evidence.rows;
            for (variant, minutes) in [(Variant::Control, control), (Variant::Treatment, treatment)] {
                rows.extend(
                    minutes
                        .into_iter()
                        .filter(|(minute, _)| *minute >= first_minute && *minute < to)
                        .map(|(minute, s)| (minute, variant, s)),
                );
            }
        }
        rows.sort_by_key(|(minute, _, _)| *minute);
        Ok((self.window_of(rollout_id, from, to, rows).await?, unvouched))
    }

    /// The window over rows of (minute, arm, stats), oldest first.
    async fn window_of(
        &self,
        rollout_id: i64,
        from: Timestamp,
        to: Timestamp,
        rows: Vec<(Timestamp, Variant, Stats)>,
    ) -> Result<WindowView, AppError> {
        let minutes = ((to.millis() - from.millis()) as f64 / 60_000.0).max(1.0);
        let step_minutes = ((minutes / 240.0).ceil() as i64).max(1);
        let step_ms = step_minutes * 60_000;
        let (mut control, mut treatment) = (Stats::default(), Stats::default());
        let mut steps: Vec<(Timestamp, Stats, Stats)> = Vec::new();
        for (minute, variant, stats) in rows {
            let at = Timestamp(from.millis() + (minute.millis() - from.millis()).div_euclid(step_ms) * step_ms);
            if steps.last().is_none_or(|(t, _, _)| *t != at) {
                steps.push((at, Stats::default(), Stats::default()));
            }
            let (_, c, t) = steps.last_mut().expect("pushed above");
            match variant {
                Variant::Control => {
                    control.merge(&stats);
                    c.merge(&stats);
                }
                Variant::Treatment => {
                    treatment.merge(&stats);
                    t.merge(&stats);
                }
            }
        }
        let step = step_minutes as f64;
        Ok(WindowView {
            from,
            to,
            step_minutes,
            control: control.summary(minutes),
            treatment: treatment.summary(minutes),
            series: steps.into_iter().map(|(at, c, t)| SeriesPoint { at, control: c.summary(step), treatment: t.summary(step) }).collect(),
            baseline: self.store.latest_baseline(rollout_id).await?,
        })
    }

    /// Control and treatment stats of one stage over `[from, to)`.
    pub async fn arms(&self, rollout_id: i64, stage: Option<i32>, from: Timestamp, to: Timestamp) -> Result<(Stats, Stats), StoreError> {
        let filter = RollupFilter { stage, ..Default::default() };
        let (mut control, mut treatment) = (Stats::default(), Stats::default());
        for (key, stats) in self.store.window_rows(rollout_id, from, to, &filter).await? {
            match key.variant {
                Variant::Control => control.merge(&stats),
                Variant::Treatment => treatment.merge(&stats),
            }
        }
        Ok((control, treatment))
    }

    /// One stage's evidence over `[from, to)` from the source `plan` names: the event store's
    /// rows, or a pull from Prometheus with each query's receipt and what it cannot vouch for.
    /// `to` is a minute past the span's end (the rows are whole minutes), so Prometheus is read
    /// up to `to` − 1 minute, and never past now.
    pub async fn stage_evidence(
        &self,
        plan: &Plan,
        rollout_id: i64,
        stage: i32,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Evidence, StoreError> {
        match self.pull(plan, rollout_id, stage, from, to).await {
            None => Ok(Evidence { rows: self.stage_minutes(rollout_id, stage, from, to).await?, ..Evidence::default() }),
            Some(pulled) => Ok(pulled.as_ref().clone()),
        }
    }

    /// The stage's pull over `[from, to)` from the Prometheus source `plan` names for it (a pull
    /// made moments ago is served again), or `None` when the stage reads the event store.
    async fn pull(&self, plan: &Plan, rollout_id: i64, stage: i32, from: Timestamp, to: Timestamp) -> Option<Arc<Evidence>> {
        let index = app::domain::units::StageIndex(stage.max(0) as u32);
        let source = plan.source_for(index)?;
        let end = Timestamp(to.millis() - 60_000);
        // An arm the stage serves to nobody may have no series, or stale ones.
        let served = plan.stage(index).map(|s| s.flag);
        let share = served.map_or(0, |f| if f.enabled { f.percentage.get() } else { 0 });
        let carry = [share > 0, share < 100];
        Some(self.prometheus.pull(rollout_id, stage, source, from, end, self.now(), carry).await)
    }

    /// One stage over `[from, to)`, each arm minute by minute (oldest first), as the guard loop
    /// and the gates judge it, from the event store. A store error keeps its kind (an outage is not corrupt data).
    pub async fn stage_minutes(&self, rollout_id: i64, stage: i32, from: Timestamp, to: Timestamp) -> Result<StageRows, StoreError> {
        let filter = RollupFilter { stage: Some(stage), ..Default::default() };
        let mut rows = StageRows::default();
        for (key, stats) in self.store.window_rows(rollout_id, from, to, &filter).await? {
            match key.variant {
                Variant::Control => rows.control.push((key.minute, stats)),
                Variant::Treatment => rows.treatment.push((key.minute, stats)),
            }
        }
        rows.control.sort_by_key(|(minute, _)| *minute);
        rows.treatment.sort_by_key(|(minute, _)| *minute);
        Ok(rows)
    }

    /// The stage's uploads of `[from, to)` by provider and by file type, both arms of each
    /// (providers first, each list by name), from its cells' totals: the groups the impact is
    /// also shown for.
    pub async fn groups(&self, plan: &Plan, rollout_id: i64, stage: i32, from: Timestamp, to: Timestamp) -> Result<Vec<Group>, StoreError> {
        let mut groups: std::collections::BTreeMap<(u8, String), [Stats; 2]> = std::collections::BTreeMap::new();
        for (file_type, _, provider, arms) in self.cell_totals(plan, rollout_id, stage, from, to).await? {
            for group in [(0, provider.clone()), (1, file_type.clone())] {
                let totals = groups.entry(group).or_default();
                totals[0].merge(&arms[0]);
                totals[1].merge(&arms[1]);
            }
        }
        // Providers and file types are the senders' free text: the most used of each kind are
        // shown, the rest summed into one group.
        let mut out = Vec::new();
        for (kind, what) in [(0u8, "provider"), (1, "file type")] {
            let mut of_kind: Vec<(String, [Stats; 2])> =
                groups.iter().filter(|((k, _), _)| *k == kind).map(|((_, name), arms)| (name.clone(), arms.clone())).collect();
            of_kind.sort_by_key(|(_, [treatment, control])| std::cmp::Reverse(treatment.count() + control.count()));
            let rest = of_kind.split_off(of_kind.len().min(MAX_GROUPS));
            of_kind.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(of_kind.into_iter().map(|(name, [treatment, control])| Group {
                label: format!("{what} {name}"),
                treatment,
                control,
            }));
            if !rest.is_empty() {
                let mut other =
                    Group { label: format!("{} other {what}s", rest.len()), treatment: Stats::default(), control: Stats::default() };
                for (_, [treatment, control]) in &rest {
                    other.treatment.merge(treatment);
                    other.control.merge(control);
                }
                out.push(other);
            }
        }
        Ok(out)
    }

    /// The stage's treatment uploads of `[from, to)` by end-to-end matrix cell (file type, size
    /// class, provider); `MatrixView::judge` merges any two rows of one cell.
    pub async fn matrix_rows(
        &self,
        plan: &Plan,
        rollout_id: i64,
        stage: i32,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<CellRow>, StoreError> {
        let totals = self.cell_totals(plan, rollout_id, stage, from, to).await?;
        Ok(totals.into_iter().map(|(file_type, size, provider, [treatment, _])| (file_type, size, provider, treatment)).collect())
    }

    /// The stage's uploads of `[from, to)` by matrix cell, each arm (treatment, control), from
    /// the stage's source: the detailed rollups' totals with the pending deltas, or the cells
    /// of the Prometheus pull the gates read (served again, not read twice), their size label
    /// classed by the plan's sizes (a size that is no number of megabytes reads as 0, a class
    /// no plan lists: outside the matrix).
    async fn cell_totals(
        &self,
        plan: &Plan,
        rollout_id: i64,
        stage: i32,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, u32, String, [Stats; 2])>, StoreError> {
        if let Some(pulled) = self.pull(plan, rollout_id, stage, from, to).await {
            let sizes = plan.matrix.as_ref().map_or(&[][..], |m| &m.sizes_mb[..]);
            let cells =
                pulled.cells.iter().map(|c| (c.file_type.clone(), c.size_class_mb(sizes).unwrap_or(0), c.provider.clone(), c.arms.clone()));
            return Ok(cells.collect());
        }
        let filter = RollupFilter { stage: Some(stage), ..Default::default() };
        let totals = self.store.rollup_totals(rollout_id, from, to, &filter).await?;
        Ok(totals
            .into_iter()
            .map(|(key, stats)| {
                let mut arms: [Stats; 2] = Default::default();
                arms[usize::from(key.variant == Variant::Control)] = stats;
                (key.file_type, key.size_class_mb.max(0) as u32, key.provider, arms)
            })
            .collect())
    }
}
