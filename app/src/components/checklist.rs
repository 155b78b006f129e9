//! The current stage's checklist, grouped by the plan's sections. Ticking persists at once and
//! records who ticked and when.

use crate::api::SetChecklistItem;
use crate::components::local_time::LocalTime;
use crate::domain::access::{Permission, Principal};
use crate::model::ChecklistItem;
use leptos::prelude::*;

#[component]
pub fn Checklist(rollout_id: i64, items: Vec<ChecklistItem>, tick: ServerAction<SetChecklistItem>, you: Principal) -> impl IntoView {
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
    let error = move || tick.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> });
    view! {
        <section class="card checklist" aria-labelledby="checklist-title">
            <h2 id="checklist-title">"Checklist " <span class="muted" data-testid="checklist-progress">{format!("{done} of {total} done")}</span></h2>
            {error}
            {sections.into_iter().map(|(title, items)| view! {
                <fieldset>
                    <legend>{title}</legend>
                    <ul>
                        {items.into_iter().map(|item| {
                            let id = item.id;
                            let no = no.clone();
                            let checked = item.checked_at.is_some();
                            // While this item's tick is on its way, the box shows it: a snapshot
                            // refetched meanwhile (someone else's change) must not undo the click.
                            let shown = move || {
                                tick.input().get().filter(|pending| pending.item_id == id).map_or(checked, |pending| pending.checked)
                            };
                            let who = item.checked_at.map(|at| view! {
                                {item.checked_by.clone().unwrap_or_default()} " · " <LocalTime at/>
                            });
                            view! {
                                <li data-testid="checklist-item" class:checked=checked>
                                    <label>
                                        <input
                                            type="checkbox"
                                            prop:checked=shown
                                            disabled=no.is_some()
                                            title=no
                                            on:change=move |ev| {
                                                tick.dispatch(SetChecklistItem { rollout_id, item_id: id, checked: event_target_checked(&ev) });
                                            }
                                        />
                                        <span>{item.text.clone()}</span>
                                    </label>
                                    {who.map(|w| view! { <span class="who muted">{w}</span> })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </fieldset>
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
