//! The comparison page: every stage that served the new path side by side — each arm's figures
//! over the stage's latest stay beside the frozen baseline — and each stage's arms per provider
//! and per file type. What an approver reads before going from 10% to 50%: did the new path hold
//! as its share grew, and does any provider or file type do worse than the rest?
//!
//! Read from stored data (and a stage's metric source) only, as the reports are, and written as
//! the same [`Block`]s, so the page and its Markdown download say the same.

use super::inline::Inline;
use super::render::{Block, cells, mb, ms, pct, table, when};
use crate::service::Rollouts;
use app::domain::plan::StageFlag;
use app::domain::stats::Summary;
use app::domain::units::{StageIndex, Timestamp, thousands};
use app::error::AppError;

/// Every stage that has served the new path, compared.
#[derive(Clone, Debug)]
pub struct Compare {
    pub rollout_id: i64,
    pub plan_name: String,
    pub made_at: Timestamp,
    /// The baseline in force now: when it was frozen, and its figures.
    pub baseline: Option<(Timestamp, Summary)>,
    /// In plan order.
    pub stages: Vec<StageArms>,
}

/// One stage's latest stay, each arm summed over it.
#[derive(Clone, Debug)]
pub struct StageArms {
    pub index: StageIndex,
    pub name: String,
    pub flag: StageFlag,
    pub from: Timestamp,
    pub to: Timestamp,
    pub treatment: Summary,
    pub control: Summary,
    /// Why the stage's metric source cannot vouch for these figures now, if it cannot.
    pub problem: Option<String>,
    /// (group, treatment, control): "provider kimi", "file type csv" (none for a stage that
    /// reads Prometheus without `matrix_labels`).
    pub groups: Vec<(String, Summary, Summary)>,
}

impl StageArms {
    /// "Stage 2 “10% rollout”, on for 10%".
    fn label(&self) -> String {
        format!("Stage {} “{}”, {}", self.index.0, self.name, self.flag)
    }
}

impl Rollouts {
    /// Rollout `id`'s stages compared, as of now.
    pub async fn compare(&self, id: i64) -> Result<Compare, AppError> {
        let store = self.store();
        let rollout = store.rollout(id).await?;
        let now = self.now();
        let spans = store.stage_spans(id).await?;
        let mut stages = Vec::new();
        for (i, stage) in rollout.plan.stages.iter().enumerate() {
            let Some(latest) = spans.iter().rfind(|s| s.stage == i as i32) else { continue };
            if !stage.flag.enabled {
                continue;
            }
            let to = latest.to.unwrap_or(now);
            // A window reads at most 31 days: a longer stay shows its last 31.
            let from = latest.from.max(Timestamp(to.millis() - crate::metrics::MAX_WINDOW.millis()));
            if to <= from {
                continue;
            }
            let minutes = (to.millis() - from.millis()).max(60_000) as f64 / 60_000.0;
            // Rows are whole minutes: the one holding `to` is read too.
            let end = Timestamp(to.millis() + 60_000);
            let evidence = self.metrics().stage_evidence(&rollout.plan, id, i as i32, from, end).await?;
            let groups = match rollout.plan.reads_cells(StageIndex(i as u32)) {
                true => self
                    .metrics()
                    .groups(&rollout.plan, id, i as i32, from, end)
                    .await?
                    .into_iter()
                    .map(|g| (g.label, g.treatment.summary(minutes), g.control.summary(minutes)))
                    .collect(),
                false => Vec::new(),
            };
            stages.push(StageArms {
                index: StageIndex(i as u32),
                name: stage.name.clone(),
                flag: stage.flag,
                from,
                to,
                treatment: evidence.rows.treatment().summary(minutes),
                control: evidence.rows.control().summary(minutes),
                problem: evidence.problem.as_ref().map(ToString::to_string),
                groups,
            });
        }
        let baseline = store.baseline_at(id, None).await?.map(|b| (b.captured_at, b.summary));
        Ok(Compare { rollout_id: id, plan_name: rollout.plan.name.clone(), made_at: now, baseline, stages })
    }
}

/// The page's title.
pub fn title(compare: &Compare) -> String {
    format!("Stages compared: {}", compare.plan_name)
}

/// The columns every comparison table shares, after its first.
const MEASURES: [&str; 7] = ["Uploads", "Success", "Errors", "Timeouts", "Latency p50", "Latency p95", "Memory per upload"];

/// The comparison as blocks, in reading order.
pub fn blocks(compare: &Compare) -> Vec<Block> {
    let figures = |what: String, s: &Summary| {
        cells![
            what,
            thousands(s.count),
            pct(s.success_rate),
            pct(s.error_rate),
            pct(s.timeout_rate),
            ms(s.latency_p50_ms),
            ms(s.latency_p95_ms),
            mb(s.memory_mean_mb)
        ]
    };
    let head = |first: &'static str| std::iter::once(first).chain(MEASURES).collect::<Vec<_>>();
    let mut out = vec![Block::Paragraph(
        format!(
            "Each stage that served the new path (the treatment arm; control is the old path), over its latest stay; the baseline is the control arm's figures as last frozen (its row says when). Made {} from Rampart's stored data (rollout {}).",
            when(compare.made_at),
            compare.rollout_id
        )
        .into(),
    )];
    if compare.stages.is_empty() {
        out.push(Block::Paragraph("No stage has served the new path yet.".into()));
        return out;
    }

    out.push(Block::Heading(2, "By stage".into()));
    let mut rows = Vec::new();
    match &compare.baseline {
        Some((captured, baseline)) => rows.push(figures(format!("Baseline (frozen {})", when(*captured)), baseline)),
        None => out.push(Block::Paragraph("No baseline has been frozen: the stages compare with their control arms only.".into())),
    }
    for stage in &compare.stages {
        rows.push(figures(format!("{}: treatment", stage.label()), &stage.treatment));
        rows.push(figures(format!("{}: control", stage.label()), &stage.control));
    }
    out.push(table(&head("Stage and arm"), rows));
    let stays: Vec<Inline> = compare
        .stages
        .iter()
        .map(|s| {
            let vouched =
                s.problem.as_ref().map_or_else(String::new, |p| format!(" The metric source cannot vouch for these figures now: {p}."));
            format!("Stage {}: {} to {}.{vouched}", s.index.0, when(s.from), when(s.to)).into()
        })
        .collect();
    out.push(Block::List(stays));

    out.push(Block::Heading(2, "By provider and file type".into()));
    out.push(Block::Paragraph(
        "Each group's treatment beside the control arm's uploads of the same group over the same minutes: a provider outage hits both arms; a defect of the new path, one."
            .into(),
    ));
    for stage in &compare.stages {
        out.push(Block::Heading(3, stage.label().into()));
        if stage.groups.is_empty() {
            out.push(Block::Paragraph("Not broken down: this stage reads its metric source by arm only, or had no uploads.".into()));
            continue;
        }
        let mut rows = Vec::new();
        for (label, treatment, control) in &stage.groups {
            rows.push(figures(format!("{label}: treatment"), treatment));
            rows.push(figures(format!("{label}: control"), control));
        }
        out.push(table(&head("Group and arm"), rows));
    }
    out
}
