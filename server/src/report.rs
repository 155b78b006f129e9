//! Reports written only from what is stored: a rollout's **final report** (the whole rollout,
//! or the rollout so far while it runs), a **stage report** (one stage, as judged when it was
//! left), and the **daily report** (the last 24 hours). [`Rollouts::report`] reads them; the
//! `render` module writes one [`Report`] as Markdown or as a page that prints cleanly, so both
//! say the same.
//!
//! Every figure comes from a stored row: stage times from the stage history, approvers and the
//! gates as judged at each advance from the audit trail's evidence, charts and the comparison
//! with the baseline from the rollups, tests and checklists from theirs.

pub mod compare;
pub mod inline;
pub mod render;
mod svg;

use crate::metrics::Unvouched;
use crate::service::Rollouts;
use crate::store::{AuditQuery, INCIDENTS, ReportNotes, StageSpan, StoreError, StoredRollout};
use app::domain::gates::{Gate, Judged};
use app::domain::impact::{self, Impact};
use app::domain::matrix::MatrixView;
use app::domain::plan::StageFlag;
use app::domain::rollout::{Rollout, Status, served_flag};
use app::domain::routines::{Every, period};
use app::domain::stats::Summary;
use app::domain::units::{Span, StageIndex, Timestamp};
use app::error::AppError;
use app::model::{AuditEntry, ChecklistItem, TestRun};

/// Which report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The whole rollout (so far, while it runs).
    Final,
    /// One stage's latest stay: from when it was last entered to when it was left (or now).
    Stage(StageIndex),
    /// The 24 hours before the report was made.
    Daily,
}

/// A report, every part of it read from stored data.
#[derive(Clone, Debug)]
pub struct Report {
    pub kind: Kind,
    pub rollout_id: i64,
    pub plan_name: String,
    pub flag_key: String,
    pub made_at: Timestamp,
    /// The time the report covers.
    pub from: Timestamp,
    pub to: Timestamp,
    pub status: Status,
    pub stage: StageIndex,
    pub served: StageFlag,
    /// Each stage the report covers, in plan order.
    pub stages: Vec<StageLine>,
    /// Each time the rollout moved forward, with the gates as judged then.
    pub advances: Vec<Advance>,
    /// Rollbacks, alerts, pauses and overrides, oldest first.
    pub incidents: Vec<AuditEntry>,
    pub charts: Vec<Chart>,
    /// The spans charted whose figures the metric source could not vouch for when the report
    /// was made (a Prometheus pull with a problem), oldest first.
    pub unvouched: Vec<Unvouched>,
    /// The baseline beside the treatment of the last stage covered (`None` without a baseline).
    pub comparison: Option<Comparison>,
    pub impact: Option<Impact>,
    /// The same impact per provider and per file type ("provider kimi", …), each against the
    /// control arm of its own group (event-store stages only).
    pub impact_by: Vec<(String, Impact)>,
    pub matrix: Option<MatrixView>,
    /// The CI runs reported for the stages covered, oldest first.
    pub tests: Vec<TestRun>,
    pub checklist: Vec<ChecklistItem>,
    /// What each of the covered stages' checklist sections is done when (the seeds' success
    /// criteria): (stage, section, criteria), in plan order.
    pub done_when: Vec<(StageIndex, String, Vec<String>)>,
    /// The final report's lessons and recommendations.
    pub notes: Option<ReportNotes>,
}

/// One stage in the timeline: planned against actual.
#[derive(Clone, Debug)]
pub struct StageLine {
    pub index: StageIndex,
    pub name: String,
    pub flag: StageFlag,
    pub soak: Span,
    /// When the stage would have begun had every earlier stage been left at the end of its soak.
    pub planned_start: Option<Timestamp>,
    /// Each time the stage was in force: entered, left (or still in force), and how it ended.
    pub spans: Vec<(Timestamp, Option<Timestamp>, &'static str)>,
}

/// A move to the next stage (or the completion): who asked, who approved, what the gates said.
#[derive(Clone, Debug)]
pub struct Advance {
    pub at: Timestamp,
    pub from: StageIndex,
    /// `None` for the completion.
    pub to: Option<StageIndex>,
    pub asked_by: String,
    pub approved_by: Vec<String>,
    /// What the asker or the approver said, if anything.
    pub reason: Option<String>,
    /// Whether gates that had not passed were overridden (the reason is then the override's).
    pub overridden: bool,
    pub gates: Vec<Gate>,
}

/// One stage's arms over time.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub step_minutes: i64,
    /// (step start, treatment, control).
    pub points: Vec<(Timestamp, Summary, Summary)>,
}

/// The frozen baseline beside the treatment's figures over a stage.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub baseline: Summary,
    pub treatment: Summary,
    /// "stage 4 “Full rollout”".
    pub of: String,
}

/// How a stage span ended, read from the span after it.
fn exit(span: &crate::store::StageSpan, next: Option<&crate::store::StageSpan>, state: &Rollout) -> &'static str {
    match next {
        Some(next) if next.stage > span.stage => "advanced",
        Some(_) => "rolled back",
        None if span.to.is_some() && state.status == Status::Complete => "completed",
        None if span.to.is_some() => "left",
        None => "in force",
    }
}

/// An advance's entry as the audit evidence holds it: the state before and after, the gates.
#[derive(serde::Deserialize)]
struct Moved {
    from: Rollout,
    to: Rollout,
    #[serde(default)]
    gates: Vec<Gate>,
}

impl Rollouts {
    /// The `kind` report of rollout `id`, as of now.
    pub async fn report(&self, id: i64, kind: Kind) -> Result<Report, AppError> {
        let store = self.store();
        let rollout = store.rollout(id).await?;
        let now = self.now();
        let spans = store.stage_spans(id).await?;
        let started = spans.first().map(|s| s.from);
        let (from, to, covered): (Timestamp, Timestamp, Box<dyn Fn(StageIndex) -> bool + Send + Sync>) = match kind {
            Kind::Final => (started.unwrap_or(now), last_moment(&spans, now), Box::new(|_| true)),
            Kind::Stage(index) => {
                if rollout.plan.stage(index).is_none() {
                    return Err(AppError::invalid("stage", format!("the plan has no stage {}", index.0)));
                }
                // A stage entered again (after a rollback) is judged by its latest stay.
                let Some(latest) = spans.iter().rfind(|s| s.stage == index.0 as i32) else {
                    return Err(AppError::invalid("stage", format!("stage {} has not begun", index.0)));
                };
                (latest.from, latest.to.unwrap_or(now), Box::new(move |s| s == index))
            }
            Kind::Daily => {
                let from = Timestamp(now.millis() - 86_400_000);
                let touched: Vec<i32> = spans.iter().filter(|s| s.to.is_none_or(|t| t > from)).map(|s| s.stage).collect();
                (from, now, Box::new(move |s: StageIndex| touched.contains(&(s.0 as i32))))
            }
        };
        // A stage's report holds what happened during its latest stay, not in an earlier one nor
        // in another stage between them.
        let in_range = |t: Timestamp| t >= from && t <= to;

        // The timeline: planned starts from the first entry and the soaks.
        let mut planned = started;
        let mut stages = Vec::new();
        for (i, stage) in rollout.plan.stages.iter().enumerate() {
            let index = StageIndex(i as u32);
            let line = StageLine {
                index,
                name: stage.name.clone(),
                flag: stage.flag,
                soak: stage.soak,
                planned_start: planned,
                spans: spans
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.stage == i as i32)
                    .map(|(k, s)| (s.from, s.to, exit(s, spans.get(k + 1), &rollout.state)))
                    .collect(),
            };
            planned = planned.map(|p| Timestamp(p.millis() + stage.soak.millis()));
            if covered(index) {
                stages.push(line);
            }
        }

        // The audit trail, oldest first: advances with their gates, incidents, overrides.
        let trail = self.audit_trail(id).await?;
        let mut advances = Vec::new();
        let mut incidents = Vec::new();
        for row in &trail {
            // Advances belong to the stage they left, whenever the entry was written (entries made
            // before audit times followed the service's clock may be a moment off the stage's);
            // everything else by its time.
            let timely = in_range(row.entry.at);
            let moved = serde_json::from_value::<Moved>(row.evidence.clone()).ok();
            let overridden = row.evidence.get("overridden").and_then(|o| o.as_array()).is_some_and(|o| !o.is_empty());
            if timely && (INCIDENTS.contains(&row.entry.action.as_str()) || (overridden && row.entry.action != "approve")) {
                incidents.push(row.entry.clone());
            }
            let Some(Moved { from: before, to: after, gates }) = moved else { continue };
            let forward = after.stage > before.stage || (after.status == Status::Complete && before.status != Status::Complete);
            if !forward || !covered(before.stage) || (kind == Kind::Daily && !timely) {
                continue;
            }
            // A stage's report: only the advance that left its latest stay, known by when that
            // stay began (the entry's own time may be a moment off the stage history's).
            if matches!(kind, Kind::Stage(_)) && before.stage_entered_at.map_or(!timely, |entered| entered != from) {
                continue;
            }
            let request = before.request.as_ref();
            let mut approved_by: Vec<String> = request.map(|r| r.approvals.iter().map(|a| a.by.clone()).collect()).unwrap_or_default();
            // The last approval carries the move; without a request before it, the asker was an
            // approver whose own approval settled it at once.
            if row.entry.action == "approve" || request.is_none() {
                approved_by.push(row.entry.actor.clone());
            }
            advances.push(Advance {
                at: row.entry.at,
                from: before.stage,
                to: (after.status != Status::Complete).then_some(after.stage),
                asked_by: request.map_or_else(|| row.entry.actor.clone(), |r| r.by.clone()),
                approved_by,
                reason: request.and_then(|r| r.override_reason.clone()).or_else(|| row.entry.reason.clone()),
                overridden,
                gates,
            });
        }

        // Charts: one per stage span in range (the daily report: one over the day).
        let (mut charts, mut unvouched) = (Vec::new(), Vec::<Unvouched>::new());
        match kind {
            Kind::Daily => charts.push(self.chart("The last 24 hours".into(), &rollout, &spans, (from, to), &mut unvouched).await?),
            _ => {
                for line in &stages {
                    for (k, (entered, left, _)) in line.spans.iter().enumerate() {
                        let (a, b) = (*entered, left.unwrap_or(now));
                        let another_stay = matches!(kind, Kind::Stage(_)) && a != from;
                        if b <= a || !line.flag.enabled || another_stay {
                            continue;
                        }
                        let again = if k > 0 { format!(" (time {})", k + 1) } else { String::new() };
                        let title = format!("Stage {} “{}” at {}{again}", line.index.0, line.name, line.flag);
                        // A window reads at most 31 days: a longer stage shows its last 31.
                        let a = a.max(Timestamp(b.millis() - crate::metrics::MAX_WINDOW.millis()));
                        charts.push(self.chart(title, &rollout, &spans, (a, b), &mut unvouched).await?);
                    }
                }
            }
        }

        // The stage whose treatment was served last (after a rollback, the one rolled back to,
        // not the highest reached): its judgement (matrix, impact) and its treatment against the baseline that
        // was in force then.
        let judged_stage = match kind {
            Kind::Stage(index) => Some(index),
            // A rollback to "off" leaves stage 0 in force, which served no treatment: judge the
            // last stay of a stage that did.
            _ => stages
                .iter()
                .filter(|l| rollout.plan.stage(l.index).is_some_and(|s| s.flag.enabled))
                .filter_map(|l| l.spans.last().map(|span| (span.0, l.index)))
                .max()
                .map(|(_, index)| index),
        };
        let (mut impact, mut matrix, mut comparison, mut impact_by) = (None, None, None, Vec::new());
        if let Some(index) = judged_stage
            && let Some((entered, left, _)) = stages.iter().find(|l| l.index == index).and_then(|l| l.spans.last()).copied()
        {
            let (a, b) = (entered.max(from), left.unwrap_or(now).min(to));
            let baseline = store.baseline_at(id, left.map(|_| b)).await?.map(|b| b.summary);
            let stage = rollout.plan.stage(index).expect("a covered stage is in the plan");
            if b > a && stage.flag.enabled {
                let judgement = self.judge(&rollout, index, stage.flag, baseline.as_ref(), Judged { from: a, to: b }).await?;
                matrix = judgement.matrix;
                // Figures the metric source could not vouch for show no impact and no comparison
                // (the report's "Metric source" section names the span and why).
                if judgement.source_ok {
                    impact = judgement.impact;
                    // Per provider and per file type, each against the control arm of its own
                    // group (a Prometheus source needs the series' cell labels for them).
                    let minutes = (b.millis() - a.millis()).max(60_000) as f64 / 60_000.0;
                    if let (Some(expected), Some(_), true) = (&rollout.plan.expected_improvements, &impact, rollout.plan.reads_cells(index))
                    {
                        let min_readings = u64::from(rollout.plan.guardrails.min_sample);
                        let groups = self.metrics().groups(&rollout.plan, id, index.0 as i32, a, Timestamp(b.millis() + 60_000)).await?;
                        impact_by = groups
                            .into_iter()
                            .map(|g| {
                                let reference = g.control.summary(minutes);
                                (g.label, impact::measure(expected, &g.treatment, &reference, "control arm", min_readings))
                            })
                            .collect();
                    }
                    let evidence =
                        self.metrics().stage_evidence(&rollout.plan, id, index.0 as i32, a, Timestamp(b.millis() + 60_000)).await?;
                    comparison = baseline.map(|baseline| Comparison {
                        baseline,
                        treatment: evidence.rows.treatment().summary(minutes),
                        of: format!("stage {} “{}”", index.0, stage.name),
                    });
                }
            }
        }

        unvouched.sort_by_key(|u| (u.from, u.stage));

        // Runs with their failed cases (a report lists which failed and why).
        let mut tests = store.test_results(id, 10_000, 10_000).await?;
        tests.retain(|t| covered(StageIndex(t.stage)) && (kind == Kind::Final || in_range(t.reported_at)));
        tests.reverse();
        let mut checklist = store.checklist(id).await?;
        match kind {
            // The day's routines whether done or not (the periods the 24 hours touch), and the
            // stage checklists' items ticked in them.
            Kind::Daily => {
                let periods: Vec<String> =
                    [Every::Day, Every::Week].iter().flat_map(|&every| [period(every, from), period(every, to)]).collect();
                checklist.retain(|item| match &item.period {
                    Some(p) => periods.contains(p),
                    None => covered(item.stage) && item.checked_at.is_some_and(in_range),
                });
                checklist.sort_by(|a, b| a.period.cmp(&b.period).then(a.id.cmp(&b.id)));
            }
            _ => checklist.retain(|item| covered(item.stage)),
        }
        let notes = match kind {
            Kind::Final => Some(store.report_notes(id).await?),
            _ => None,
        };
        let served = served_flag(&rollout.plan, &rollout.state);
        let StoredRollout { plan, state, .. } = rollout;
        let done_when = (0..plan.stages.len() as u32)
            .map(StageIndex)
            .filter(|&index| covered(index) && checklist.iter().any(|item| item.stage == index && item.period.is_none()))
            .flat_map(|index| {
                let sections = &plan.stages[index.0 as usize].checklist;
                sections.iter().filter(|s| !s.done_when.is_empty()).map(move |s| (index, s.title.clone(), s.done_when.clone()))
            })
            .collect();
        Ok(Report {
            kind,
            rollout_id: id,
            plan_name: plan.name.clone(),
            flag_key: plan.flag.key.clone(),
            made_at: now,
            from,
            to,
            status: state.status,
            stage: state.stage,
            served,
            stages,
            advances,
            incidents,
            charts,
            unvouched,
            comparison,
            impact,
            impact_by,
            matrix,
            tests,
            checklist,
            done_when,
            notes,
        })
    }

    /// The whole audit trail of a rollout with its evidence, oldest first.
    async fn audit_trail(&self, id: i64) -> Result<Vec<crate::store::AuditRow>, StoreError> {
        const PAGE: i64 = 1_000;
        let mut rows = Vec::new();
        let mut before = None;
        loop {
            let page = self.store().audit_page(id, &AuditQuery { before, limit: PAGE, ..AuditQuery::default() }).await?;
            before = page.last().map(|r| r.entry.id);
            let done = (page.len() as i64) < PAGE;
            rows.extend(page);
            if done {
                break;
            }
        }
        rows.reverse();
        Ok(rows)
    }

    /// A chart of `[from, to)`, from the source each stage in it reads (the event store, or
    /// Prometheus span by span); spans whose pull had a problem are added to `unvouched`.
    async fn chart(
        &self,
        title: String,
        rollout: &StoredRollout,
        spans: &[StageSpan],
        (from, to): (Timestamp, Timestamp),
        unvouched: &mut Vec<Unvouched>,
    ) -> Result<Chart, AppError> {
        let window = if rollout.plan.sources().is_empty() {
            self.metrics().window(rollout.id, from, to, &crate::store::RollupFilter::default()).await?
        } else {
            let (window, problems) = self.metrics().window_by_stage(&rollout.plan, rollout.id, spans, from, to).await?;
            unvouched.extend(problems);
            window
        };
        let points = window.series.into_iter().map(|p| (p.at, p.treatment, p.control)).collect();
        Ok(Chart { title, from, to, step_minutes: window.step_minutes, points })
    }
}

/// The end of what a final report covers: when the rollout completed or rolled back for good,
/// else now.
fn last_moment(spans: &[crate::store::StageSpan], now: Timestamp) -> Timestamp {
    spans.last().and_then(|s| s.to).unwrap_or(now)
}

/// Escapes text for HTML.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
