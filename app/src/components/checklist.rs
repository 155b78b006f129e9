//! The current stage's checklist, grouped by the plan's sections. Ticking persists at once and
//! records who ticked and when.

use crate::components::local_time::LocalTime;
use crate::domain::access::{Permission, Principal};
use crate::model::ChecklistItem;
use leptos::prelude::*;

/// The current stage's checklist (or the routines). Rendered on the server, every box disabled:
/// the page's `Live` island enables those the caller may tick (`data-waits`) and saves a tick
/// at once (the box names its rollout and item), keeping the box as clicked until the page it
/// fetches after the save shows who ticked it.
#[component]
pub fn Checklist(
    rollout_id: i64,
    items: Vec<ChecklistItem>,
    you: Principal,
    /// The card's heading.
    #[prop(default = "Checklist")]
    title: &'static str,
    /// Its element ids and test ids: `checklist`, or `routines` for the recurring lists.
    #[prop(default = "checklist")]
    key: &'static str,
    /// The plan's sections of these items, for what each section is done when.
    #[prop(optional)]
    plan_sections: Vec<crate::domain::plan::ChecklistSection>,
) -> impl IntoView {
    let no = crate::components::actions::denied(&you, Permission::TickChecklist);
    let done = items.iter().filter(|i| i.checked_at.is_some()).count();
    let total = items.len();
    let mut sections: Vec<(String, Vec<ChecklistItem>)> = Vec::new();
    for item in items {
        match sections.last_mut() {
            Some((title, list)) if *title == item.section => list.push(item),
            _ => sections.push((item.section.clone(), vec![item])),
        }
    }
    view! {
        <section class="card checklist" aria-labelledby=format!("{key}-title") data-testid=key>
            <h2 id=format!("{key}-title")>{title} " " <span class="muted" data-testid=format!("{key}-progress")>{format!("{done} of {total} done")}</span></h2>
            <p class="error" role="alert" data-error hidden></p>
            {sections.into_iter().map(|(title, items)| {
                let done_when = plan_sections
                    .iter()
                    .find(|s| s.title == title && !s.done_when.is_empty())
                    .map(|s| view! { <p class="done-when muted" data-testid="done-when">"Done when: " {s.done_when.join(" · ")}</p> });
                view! {
                <fieldset>
                    <legend>{title}</legend>
                    {done_when}
                    <ul>
                        {items.into_iter().map(|item| {
                            let id = item.id;
                            let no = no.clone();
                            let checked = item.checked_at.is_some();
                            let who = item.checked_at.map(|at| view! {
                                {item.checked_by.clone().unwrap_or_default()} " · " <LocalTime at/>
                            });
                            // A finding and an owner are written on a small server page of
                            // their own: a link here costs the WASM next to nothing. The page
                            // is the server's, not the app's: `rel="external"` keeps the
                            // router from looking for it among the app's routes.
                            let edit = no.is_none().then(|| view! {
                                <a class="item-note muted" rel="external" href=format!("/rollouts/{rollout_id}/checklist/{id}/note")>"Finding / owner"</a>
                            });
                            view! {
                                <li data-testid="checklist-item" id=format!("item-{id}") class:checked=checked>
                                    <label>
                                        <input
                                            type="checkbox"
                                            checked=checked
                                            // Enabled by the page's island when it runs: a box
                                            // ticked before then would not be saved.
                                            disabled=true
                                            data-waits=no.is_none().then_some("")
                                            title=no
                                            data-rollout=rollout_id.to_string()
                                            data-item=id.to_string()
                                        />
                                        <span>{item.text.clone()}</span>
                                    </label>
                                    {who.map(|w| view! { <span class="who muted">{w}</span> })}
                                    {item.owner.clone().map(|o| view! { <span class="who muted">{format!(" · owner {o}")}</span> })}
                                    {item.note.clone().map(|n| view! { <p class="note muted" data-testid="checklist-note">{n}</p> })}
                                    {edit}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </fieldset>
                }
            }).collect_view()}
        </section>
    }
}

/// Every other stage's checklist, folded, with who ticked what and when: earlier stages as
/// evidence, later ones to prepare.
#[component]
pub fn OtherChecklists(
    plan: crate::domain::plan::Plan,
    current: crate::domain::units::StageIndex,
    items: Vec<ChecklistItem>,
) -> impl IntoView {
    let stages = plan
        .stages
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u32 != current.0)
        .map(|(i, stage)| {
            let list: Vec<ChecklistItem> = items.iter().filter(|item| item.stage.0 == i as u32).cloned().collect();
            let done = list.iter().filter(|item| item.checked_at.is_some()).count();
            let summary = format!("Stage {i}: {} — {done} of {} done", stage.name, list.len());
            let rows = list
                .into_iter()
                .map(|item| {
                    let checked = item.checked_at.is_some();
                    let mark = if checked { "✓" } else { "○" };
                    let who = item.checked_at.map(|at| view! { " — " {item.checked_by.clone().unwrap_or_default()} " · " <LocalTime at/> });
                    view! { <li class:checked=checked>{mark}" "{item.text}<span class="muted">{who}</span></li> }
                })
                .collect_view();
            view! { <details data-testid="other-checklist"><summary>{summary}</summary><ul class="plain">{rows}</ul></details> }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="other-checklists-title">
            <h2 id="other-checklists-title">"Other stages' checklists"</h2>
            {stages}
        </section>
    }
}
