//! The current stage's checklist, grouped by the plan's sections. Ticking persists at once and
//! records who ticked and when.

use crate::api::set_checklist_item;
use crate::components::local_time::LocalTime;
use crate::domain::access::{Permission, Principal};
use crate::error::AppError;
use crate::model::ChecklistItem;
use leptos::prelude::*;
use std::collections::HashMap;

/// The page's checklist ticks. A box shows what this page asked for from the click until a
/// snapshot asked for after the server saved it is on show: neither a snapshot refetched
/// meanwhile (someone else's change) nor the gap between the save and the refetch it causes
/// flips the box back.
#[derive(Clone, Copy)]
pub struct Ticks {
    action: Action<Tick, Result<ChecklistItem, AppError>>,
    asked: RwSignal<HashMap<i64, Asked>>,
    clicks: StoredValue<u64>,
    saved: RwSignal<u64>,
}

#[derive(Clone)]
struct Tick {
    rollout_id: i64,
    item_id: i64,
    checked: bool,
    click: u64,
}

/// The latest state this page asked for an item: by which click, and which save confirmed it
/// (`None`: on its way).
#[derive(Clone, Copy)]
struct Asked {
    checked: bool,
    click: u64,
    saved_as: Option<u64>,
}

impl Ticks {
    pub fn new() -> Self {
        let asked = RwSignal::new(HashMap::<i64, Asked>::new());
        let saved = RwSignal::new(0u64);
        let action = Action::new(move |tick: &Tick| {
            let tick = tick.clone();
            async move {
                let result = set_checklist_item(tick.rollout_id, tick.item_id, tick.checked).await;
                if result.is_ok() {
                    saved.update(|n| *n += 1);
                }
                let save = saved.get_untracked();
                asked.update(|asked| {
                    // A later click on the same item decides what its box shows.
                    if asked.get(&tick.item_id).is_none_or(|latest| latest.click != tick.click) {
                        return;
                    }
                    match &result {
                        Ok(_) => asked.insert(tick.item_id, Asked { checked: tick.checked, click: tick.click, saved_as: Some(save) }),
                        Err(_) => asked.remove(&tick.item_id),
                    };
                });
                result
            }
        });
        Self { action, asked, clicks: StoredValue::new(0), saved }
    }

    /// How many ticks the server has saved (tracked): a snapshot asked for after it moved shows them.
    pub fn saved(&self) -> u64 {
        self.saved.get()
    }

    fn dispatch(&self, rollout_id: i64, item_id: i64, checked: bool) {
        self.clicks.update_value(|n| *n += 1);
        let click = self.clicks.get_value();
        self.asked.update(|asked| {
            asked.insert(item_id, Asked { checked, click, saved_as: None });
        });
        self.action.dispatch(Tick { rollout_id, item_id, checked, click });
    }

    /// What the box shows, given a snapshot asked for when `seen` ticks were saved.
    fn shown(&self, item_id: i64, seen: u64, in_snapshot: bool) -> bool {
        match self.asked.read().get(&item_id) {
            Some(asked) if asked.saved_as.is_none_or(|save| save > seen) => asked.checked,
            _ => in_snapshot,
        }
    }

    fn error(&self) -> Option<AppError> {
        self.action.value().get().and_then(Result::err)
    }
}

impl Default for Ticks {
    fn default() -> Self {
        Self::new()
    }
}

/// The current stage's checklist, from a snapshot asked for when `seen` ticks were saved.
#[component]
pub fn Checklist(
    rollout_id: i64,
    items: Vec<ChecklistItem>,
    seen: u64,
    ticks: Ticks,
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
    let error = move || ticks.error().map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> });
    view! {
        <section class="card checklist" aria-labelledby=format!("{key}-title") data-testid=key>
            <h2 id=format!("{key}-title")>{title} " " <span class="muted" data-testid=format!("{key}-progress")>{format!("{done} of {total} done")}</span></h2>
            {error}
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
                            let shown = move || ticks.shown(id, seen, checked);
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
                                            prop:checked=shown
                                            disabled=no.is_some()
                                            title=no
                                            on:change=move |ev| {
                                                ticks.dispatch(rollout_id, id, event_target_checked(&ev));
                                            }
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
