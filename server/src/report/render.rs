//! A [`Report`] as a list of blocks (headings, paragraphs, tables, charts), written out as
//! Markdown or as a standalone HTML page with print styles. Both come from the same blocks, so
//! the download and the page never disagree.

use super::inline::Inline;
use super::{Kind, Report};
use app::domain::units::{Timestamp, thousands};
use app::format::{
    duration, gate_interval, gate_point, gate_threshold, impact_change, impact_expected, impact_figure, matrix_cell_detail, utc_minute,
    versus_control,
};
use app::model::{AuditEntry, ChecklistItem};

mod figures;
mod html;
mod markdown;

use figures::{chart_blocks, comparison_table};
pub use html::{Page, html, html_page, stale_notes_page};
pub use markdown::{markdown, markdown_page};

/// Who may read the names in a report: a person signed in sees them; a share link's holder sees
/// roles instead (the link may reach anyone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    Shown,
    Hidden,
}

/// One piece of a report. Every text in it is an [`Inline`] run or plain text the writers
/// escape: nothing a person wrote reaches the Markdown or the page unescaped.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Heading(u8, Inline),
    Paragraph(Inline),
    List(Vec<Inline>),
    Table {
        head: Vec<Inline>,
        rows: Vec<Vec<Inline>>,
    },
    /// An inline SVG chart (HTML), and the same figures as a short table (Markdown).
    Chart {
        svg: String,
        caption: String,
        table: Box<Block>,
    },
    /// Free text a team wrote, kept as written (line breaks included).
    Text {
        id: &'static str,
        title: Inline,
        text: String,
    },
}

/// A table row: each cell anything that makes an [`Inline`] (a `String` is text as written).
macro_rules! cells {
    ($($cell:expr),* $(,)?) => { vec![$(Inline::from($cell)),*] };
}
pub(super) use cells;

pub(super) fn table(head: &[&str], rows: Vec<Vec<Inline>>) -> Block {
    Block::Table { head: head.iter().map(|h| Inline::text(*h)).collect(), rows }
}

pub(super) fn when(t: Timestamp) -> String {
    utc_minute(t)
}

pub(super) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.2}%"))
}

pub(super) fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.0} ms"))
}

pub(super) fn mb(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1} MB"))
}

/// The report's title.
pub fn title(report: &Report) -> String {
    match report.kind {
        Kind::Final if report.status == app::domain::rollout::Status::Complete => format!("Final report: {}", report.plan_name),
        Kind::Final => format!("Report so far: {}", report.plan_name),
        Kind::Stage(index) => {
            let name = report.stages.first().map_or("", |s| s.name.as_str());
            format!("Stage {} “{name}” report: {}", index.0, report.plan_name)
        }
        Kind::Daily => format!("Daily report: {}", report.plan_name),
    }
}

/// The report as blocks, in reading order.
pub fn blocks(report: &Report, names: Names) -> Vec<Block> {
    let person = |name: &str, role: &str| if names == Names::Shown { name.to_string() } else { role.to_string() };
    let ticked = |item: &ChecklistItem| match (&item.checked_by, item.checked_at) {
        (Some(by), Some(at)) => format!("✓ {} by {}", when(at), person(by, "a team member")),
        _ => "open".to_string(),
    };
    let mut out = Vec::new();

    // Summary.
    out.push(Block::Heading(2, "Summary".into()));
    let status = match report.status {
        app::domain::rollout::Status::Complete => "complete".to_string(),
        other => format!("{} at stage {}", other.label(), report.stage.0),
    };
    let rollbacks = report.incidents.iter().filter(|i| i.action.ends_with("roll_back")).count();
    out.push(Block::List(vec![
        Inline::text("Flag ").code(&report.flag_key).then(format!(": {status}, served {}.", report.served)),
        format!("Covers {} to {} ({}).", when(report.from), when(report.to), duration(report.to.since(report.from))).into(),
        format!(
            "{} stage change{} forward, {} rollback{}, {} incident{} in all.",
            report.advances.len(),
            plural(report.advances.len()),
            rollbacks,
            plural(rollbacks),
            report.incidents.len(),
            plural(report.incidents.len())
        )
        .into(),
        format!("Made {} from Rampart's stored data (rollout {}).", when(report.made_at), report.rollout_id).into(),
    ]));
    if !report.unvouched.is_empty() {
        // A figure no source vouches for decided nothing; the reader learns which before any.
        out.push(Block::Heading(2, "Metric source".into()));
        let stage_name =
            |stage: i32| report.stages.iter().find(|l| l.index.0 as i32 == stage).map_or_else(String::new, |l| format!(" “{}”", l.name));
        out.push(Block::Paragraph(
            "The metric source could not give these spans' figures when the report was made: their charts show what it did say, and the report judges nothing on them (no impact, no comparison). Gates and rollbacks shown were judged when they happened, on what the source gave then."
                .into(),
        ));
        out.push(Block::List(
            report
                .unvouched
                .iter()
                .map(|u| format!("Stage {}{}, {} to {}: {}.", u.stage, stage_name(u.stage), when(u.from), when(u.to), u.problem).into())
                .collect(),
        ));
    }

    // Timeline: planned against actual.
    out.push(Block::Heading(2, "Stage timeline".into()));
    let mut rows = Vec::new();
    for line in &report.stages {
        let planned = line.planned_start.map_or_else(|| "—".into(), when);
        if line.spans.is_empty() {
            let stage = format!("{} {}", line.index.0, line.name);
            rows.push(cells![stage, line.flag.to_string(), duration(line.soak), planned.clone(), "not reached", "—", "—"]);
        }
        for (entered, left, how) in &line.spans {
            let stayed = duration(left.unwrap_or(report.made_at).since(*entered));
            let left = left.map_or_else(|| "—".into(), when);
            rows.push(cells![
                format!("{} {}", line.index.0, line.name),
                line.flag.to_string(),
                duration(line.soak),
                planned.clone(),
                when(*entered),
                format!("{left} ({how})"),
                stayed,
            ]);
        }
    }
    out.push(table(&["Stage", "Flag", "Planned soak", "Planned start", "Entered", "Left", "Time in stage"], rows));

    // Advances with the gates as judged then.
    if !report.advances.is_empty() {
        out.push(Block::Heading(2, "Gate evidence at each advance".into()));
        for advance in &report.advances {
            let to = advance.to.map_or_else(|| "completion".to_string(), |s| format!("stage {}", s.0));
            out.push(Block::Heading(3, format!("{} — stage {} to {to}", when(advance.at), advance.from.0).into()));
            let approvers: Vec<String> = advance.approved_by.iter().map(|a| person(a, "an approver")).collect();
            let mut said = Inline::text(format!("Asked by {}", person(&advance.asked_by, "a team member")));
            if !approvers.is_empty() {
                said = said.then(format!("; approved by {}", approvers.join(", ")));
            }
            match &advance.reason {
                Some(reason) if advance.overridden => said = said.then("; ").strong("overridden").then(format!(": “{reason}”")),
                Some(reason) => said = said.then(format!("; reason: “{reason}”")),
                None => {}
            }
            out.push(Block::Paragraph(said.then(".")));
            if advance.gates.is_empty() {
                out.push(Block::Paragraph("The stage had no gates to judge (its plan sets no criteria).".into()));
                continue;
            }
            let rows = advance
                .gates
                .iter()
                .map(|g| {
                    let observed = match gate_interval(g) {
                        Some(i) => format!("{} ({i})", gate_point(g)),
                        None => gate_point(g),
                    };
                    cells![
                        g.criterion.label(),
                        gate_threshold(g),
                        observed,
                        format!("{} / {}", thousands(g.sample), thousands(g.min_sample)),
                        versus_control(g),
                        g.verdict.label(),
                    ]
                })
                .collect();
            out.push(table(
                &["Criterion", "Threshold", "Observed (97.5% anytime interval)", "Sample / min", "vs control", "Verdict"],
                rows,
            ));
        }
    }

    // Incidents.
    out.push(Block::Heading(2, "Incidents".into()));
    if report.incidents.is_empty() {
        out.push(Block::Paragraph("None: no rollback, alert, pause or override.".into()));
    } else {
        let rows = report
            .incidents
            .iter()
            .map(|i| {
                let mut i: AuditEntry = i.clone();
                if names == Names::Hidden {
                    i.without_name();
                }
                cells![when(i.at), i.actor, i.summary, i.reason.unwrap_or_default()]
            })
            .collect();
        out.push(table(&["When", "Who", "What", "Reason"], rows));
    }

    // Charts.
    if !report.charts.is_empty() {
        out.push(Block::Heading(2, "Charts".into()));
        for chart in &report.charts {
            out.push(Block::Heading(3, chart.title.as_str().into()));
            out.extend(chart_blocks(chart));
        }
    }

    // Baseline against the treatment.
    if let Some(c) = &report.comparison {
        out.push(Block::Heading(2, "Baseline against the new path".into()));
        out.push(Block::Paragraph(format!("The frozen baseline beside the treatment uploads of {}.", c.of).into()));
        out.push(comparison_table(&c.baseline, &c.treatment));
    }

    // Impact.
    if let Some(impact) = &report.impact {
        out.push(Block::Heading(2, "Impact against the expected improvements".into()));
        out.push(Block::Paragraph(
            format!(
                "{} treatment uploads against the {}; each change with its anytime interval (each end wrong with chance at most 2.5%).",
                thousands(impact.treatment_uploads),
                impact.reference
            )
            .into(),
        ));
        let rows = impact
            .measures
            .iter()
            .map(|m| {
                cells![
                    m.what.as_str(),
                    impact_figure(m.reference, &m.unit),
                    impact_figure(m.treatment, &m.unit),
                    impact_change(m),
                    impact_expected(m),
                    m.outcome.label(),
                ]
            })
            .collect();
        out.push(table(&["Measure", "Reference", "Treatment", "Change", "Expected", "Outcome"], rows));
    }
    if let (Some(_), Some(((_, first), _))) = (&report.impact, report.impact_by.split_first()) {
        out.push(Block::Heading(3, "By provider and by file type".into()));
        out.push(Block::Paragraph(
            "Each group's treatment uploads against the control arm's of the same group, over the same minutes. Each interval holds on its own: among many groups one may miss by chance, and the gate judges the whole stage above."
                .into(),
        ));
        let mut head = vec!["Group", "Treatment uploads"];
        head.extend(first.measures.iter().map(|m| m.what.as_str()));
        let rows = report
            .impact_by
            .iter()
            .map(|(group, impact)| {
                let mut row = cells![group.as_str(), thousands(impact.treatment_uploads)];
                row.extend(impact.measures.iter().map(|m| Inline::from(format!("{} · {}", impact_change(m), m.outcome.label()))));
                row
            })
            .collect();
        out.push(table(&head, rows));
    }

    // Matrix.
    if let Some(matrix) = &report.matrix {
        out.push(Block::Heading(2, "End-to-end matrix".into()));
        let passing = matrix.cells.iter().filter(|c| c.verdict == app::domain::gates::Verdict::Pass).count();
        out.push(Block::Paragraph(
            format!(
                "{passing} of {} cells pass; each needs {} treatment uploads with its failures within {:.1}%.",
                matrix.cells.len(),
                matrix.min_per_cell,
                100.0 - matrix.success_min
            )
            .into(),
        ));
        let mut head = vec!["File type · size"];
        head.extend(matrix.providers.iter().map(String::as_str));
        let mut rows = Vec::new();
        for file_type in &matrix.file_types {
            for size in &matrix.sizes_mb {
                let mut row = cells![format!("{file_type} · ≤ {size} MB")];
                for provider in &matrix.providers {
                    row.push(
                        matrix
                            .cell(file_type, *size, provider)
                            .map_or_else(
                                || "—".into(),
                                |c| format!("{}: {} uploads, {}", c.verdict.label(), thousands(c.uploads), matrix_cell_detail(c)),
                            )
                            .into(),
                    );
                }
                rows.push(row);
            }
        }
        out.push(table(&head, rows));
    }

    // Tests.
    out.push(Block::Heading(2, "Test results".into()));
    if report.tests.is_empty() {
        out.push(Block::Paragraph("No CI test runs were reported.".into()));
    } else {
        let rows = report
            .tests
            .iter()
            .map(|t| {
                cells![
                    when(t.reported_at),
                    t.stage.to_string(),
                    t.suite.as_str(),
                    format!("{} of {}", t.passed, t.passed + t.failed),
                    t.skipped.to_string(),
                    person(&t.reported_by, "CI"),
                    // CI links are the team's own, not a stakeholder's.
                    if names == Names::Shown { t.url.clone().unwrap_or_default() } else { String::new() },
                ]
            })
            .collect();
        out.push(table(&["Reported", "Stage", "Suite", "Passed", "Skipped", "By", "Run"], rows));
        let failed: Vec<Vec<Inline>> = report
            .tests
            .iter()
            .flat_map(|t| {
                t.failures.iter().map(move |f| {
                    let case = if f.classname.is_empty() { f.name.clone() } else { format!("{}::{}", f.classname, f.name) };
                    cells![when(t.reported_at), t.suite.as_str(), case, first_line(&f.message, 300)]
                })
            })
            .collect();
        if !failed.is_empty() {
            out.push(Block::Heading(3, "Failed cases".into()));
            out.push(table(&["Reported", "Suite", "Case", "Message"], failed));
        }
    }

    let (routines, own): (Vec<_>, Vec<_>) = report.checklist.iter().partition(|i| i.period.is_some());
    if report.kind == Kind::Daily {
        // The day's routines item by item: what was done, by whom and when, what is still open.
        out.push(Block::Heading(2, "Routines".into()));
        if routines.is_empty() {
            out.push(Block::Paragraph("No routines were due in these 24 hours.".into()));
        } else {
            let done = routines.iter().filter(|i| i.checked_at.is_some()).count();
            out.push(Block::Paragraph(format!("{done} of {} items done, {} open.", routines.len(), routines.len() - done).into()));
            let rows = routines
                .iter()
                .map(|i| cells![i.section.as_str(), i.text.as_str(), ticked(i), i.note.clone().unwrap_or_default()])
                .collect();
            out.push(table(&["List", "Item", "Done", "Found"], rows));
        }
    } else if !routines.is_empty() {
        // Each recurring list's day (or week), how much of it was done, what was found.
        out.push(Block::Heading(2, "Routines".into()));
        let mut rows = Vec::new();
        let mut lists: Vec<(&str, Vec<&ChecklistItem>)> = Vec::new();
        for item in routines {
            match lists.last_mut() {
                Some((section, items)) if *section == item.section => items.push(item),
                _ => lists.push((&item.section, vec![item])),
            }
        }
        lists.sort_by(|a, b| a.1[0].period.cmp(&b.1[0].period).then(a.1[0].id.cmp(&b.1[0].id)));
        for (section, items) in lists {
            let done = items.iter().filter(|i| i.checked_at.is_some()).count();
            let found: Vec<String> = items
                .iter()
                .filter_map(|i| {
                    i.note.as_ref().map(|n| format!("{}: {n} ({})", i.text, person(i.checked_by.as_deref().unwrap_or(""), "a team member")))
                })
                .collect();
            rows.push(cells![section, format!("{done} of {}", items.len()), found.join("; ")]);
        }
        out.push(table(&["List", "Done", "Findings"], rows));
    }

    // Checklists.
    if !own.is_empty() {
        out.push(Block::Heading(2, "Checklists".into()));
        let rows = own
            .iter()
            .map(|item| {
                let text = match &item.note {
                    Some(note) => format!("{} — found: {note}", item.text),
                    None => item.text.clone(),
                };
                cells![item.stage.0.to_string(), item.section.as_str(), text, ticked(item)]
            })
            .collect();
        out.push(table(&["Stage", "List", "Item", "Done"], rows));
        if !report.done_when.is_empty() {
            let rows = report
                .done_when
                .iter()
                .map(|(stage, section, criteria)| cells![stage.0.to_string(), section.as_str(), criteria.join(" · ")])
                .collect();
            out.push(Block::Paragraph("What each list is done when, as the plan says (the measurable ones are the stages' gates):".into()));
            out.push(table(&["Stage", "List", "Done when"], rows));
        }
    }

    if let Some(notes) = &report.notes {
        let by = match (&notes.written_by, notes.written_at) {
            (Some(by), Some(at)) => format!(" (last written by {} at {})", person(by, "a team member"), when(at)),
            _ => String::new(),
        };
        out.push(Block::Text { id: "lessons", title: format!("Lessons learned{by}").into(), text: notes.lessons.clone() });
        out.push(Block::Text { id: "recommendations", title: "Recommendations".into(), text: notes.recommendations.clone() });
    }
    out
}

/// The first line of `text`, at most `max` characters of it.
fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if line.chars().count() > max { format!("{}…", line.chars().take(max).collect::<String>()) } else { line.to_string() }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
