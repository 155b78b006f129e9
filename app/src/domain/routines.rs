//! The plan's recurring checklists ("Each day", "Each evening", "Weekly monitoring") as dated
//! instances: each day (or week, Monday to Sunday, UTC) of a live rollout has its own copy of
//! each list, ticked on its day. A list recurs as its `every` says, else weekly when its title
//! speaks of a week and daily otherwise. Routines never block Advance: they are what the team
//! does while the stage soaks. A period's items still open stay on show through the next period,
//! so a team west of UTC keeps its evening list after UTC midnight until it is ticked.

pub use super::plan::Every;
use super::plan::Plan;
use super::units::{Timestamp, civil_date};

const DAY_MS: i64 = 86_400_000;

/// One item of one list's instance for the period holding `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// `2026-11-23` for a day, `week of 2026-11-23` (its Monday) for a week.
    pub period: String,
    /// The list's title and its period: "Each day · 2026-11-23".
    pub section: String,
    /// Unique within the period: the list's index × 1,000 + the item's.
    pub position: i32,
    pub text: String,
}

/// The period of `every` holding `now`.
pub fn period(every: Every, now: Timestamp) -> String {
    let day = now.millis().div_euclid(DAY_MS);
    match every {
        Every::Day => civil_date(day),
        // 1970-01-01 was a Thursday: Monday is 3 days before it.
        Every::Week => format!("week of {}", civil_date(day - (day + 3).rem_euclid(7))),
    }
}

/// The routines a team sees at `now`: every item of the periods holding now, and the items of
/// the period before each list's that are still open.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    current: Vec<String>,
    previous: Vec<String>,
}

impl Shown {
    pub fn at(plan: &Plan, now: Timestamp) -> Shown {
        let mut shown = Shown::default();
        for list in &plan.recurring_checklists {
            let every = list.every();
            let length = match every {
                Every::Day => DAY_MS,
                Every::Week => 7 * DAY_MS,
            };
            shown.current.push(period(every, now));
            shown.previous.push(period(every, Timestamp(now.millis() - length)));
        }
        shown
    }

    /// Whether an item of `period`, done or still open, is on show.
    pub fn keeps(&self, period: &str, done: bool) -> bool {
        self.current.iter().any(|p| p == period) || (!done && self.previous.iter().any(|p| p == period))
    }
}

/// Every item of the plan's recurring lists due in the periods holding `now`.
pub fn due(plan: &Plan, now: Timestamp) -> Vec<Due> {
    let mut out = Vec::new();
    for (l, list) in plan.recurring_checklists.iter().enumerate() {
        let period = period(list.every(), now);
        for (i, text) in list.items.iter().enumerate() {
            out.push(Due {
                period: period.clone(),
                section: format!("{} · {period}", list.title),
                position: (l * 1_000 + i) as i32,
                text: text.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23 was a Monday.
    const MONDAY: i64 = 1_795_392_000_000;

    #[test]
    fn days_and_weeks_begin_at_utc_midnight_and_on_monday() {
        assert_eq!(period(Every::Day, Timestamp(MONDAY)), "2026-11-23");
        assert_eq!(period(Every::Day, Timestamp(MONDAY - 1)), "2026-11-22");
        assert_eq!(period(Every::Week, Timestamp(MONDAY)), "week of 2026-11-23");
        assert_eq!(period(Every::Week, Timestamp(MONDAY + 7 * 86_400_000 - 1)), "week of 2026-11-23", "Sunday night");
        assert_eq!(period(Every::Week, Timestamp(MONDAY - 1)), "week of 2026-11-16");
        assert_eq!(period(Every::Week, Timestamp(0)), "week of 1969-12-29");
    }

    #[test]
    fn the_default_plans_routines_are_two_daily_lists_and_a_weekly_one() {
        let plan = Plan::from_toml(super::super::plan::DEFAULT_PLAN_TOML).unwrap();
        let due = due(&plan, Timestamp(MONDAY + 3 * 86_400_000));
        let sections: Vec<&str> = due.iter().map(|d| d.section.as_str()).collect();
        assert!(sections.contains(&"Each day · 2026-11-26") && sections.contains(&"Each evening · 2026-11-26"));
        assert!(sections.contains(&"Weekly monitoring · week of 2026-11-23"));
        let total: usize = plan.recurring_checklists.iter().map(|l| l.items.len()).sum();
        assert_eq!(due.len(), total);
        let mut keys: Vec<(&str, i32)> = due.iter().map(|d| (d.period.as_str(), d.position)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), total, "no two items share a period and a position");
    }

    #[test]
    fn a_list_recurs_as_its_every_says_else_as_its_title_does() {
        let plan = Plan::from_toml(&format!(
            "{}\n[[recurring_checklists]]\ntitle = \"Each weekday\"\nitems = [\"Stand-up\"]\nevery = \"day\"\n\n[[recurring_checklists]]\ntitle = \"Sprint\"\nitems = [\"Demo\"]\nevery = \"week\"\n",
            super::super::plan::DEFAULT_PLAN_TOML
        ))
        .unwrap();
        let at = Timestamp(MONDAY + 3 * 86_400_000);
        let section = |text: &str| due(&plan, at).into_iter().find(|d| d.text == text).unwrap().section;
        // By its title alone "Each weekday" would be weekly: it speaks of a week.
        assert_eq!(section("Stand-up"), "Each weekday · 2026-11-26");
        assert_eq!(section("Demo"), "Sprint · week of 2026-11-23");
        assert_eq!(plan.recurring_checklists.iter().find(|l| l.title == "Weekly monitoring").unwrap().every(), Every::Week);
    }

    #[test]
    fn a_periods_open_items_stay_on_show_through_the_next_period_only() {
        let plan = Plan::from_toml(super::super::plan::DEFAULT_PLAN_TOML).unwrap();
        // Tuesday 2026-11-24, 01:00 UTC: Monday evening for a team at UTC−8.
        let shown = Shown::at(&plan, Timestamp(MONDAY + 86_400_000 + 3_600_000));
        assert!(shown.keeps("2026-11-24", false) && shown.keeps("2026-11-24", true), "today's, done or not");
        assert!(shown.keeps("2026-11-23", false), "yesterday's still open");
        assert!(!shown.keeps("2026-11-23", true), "yesterday's done: in the reports only");
        assert!(!shown.keeps("2026-11-22", false), "two days back: in the reports only");
        assert!(shown.keeps("week of 2026-11-23", true) && shown.keeps("week of 2026-11-16", false));
        assert!(!shown.keeps("week of 2026-11-16", true) && !shown.keeps("week of 2026-11-09", false));
    }
}
