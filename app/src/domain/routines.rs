//! The plan's recurring checklists ("Each day", "Each evening", "Weekly monitoring") as dated
//! instances: each day (or week, Monday to Sunday, UTC) of a live rollout has its own copy of
//! each list, ticked on its day. A list whose title speaks of a week recurs weekly; any other
//! daily. Routines never block Advance: they are what the team does while the stage soaks.

use super::plan::Plan;
use super::units::{Timestamp, civil_date};

/// How often a list recurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Every {
    Day,
    Week,
}

impl Every {
    /// "Weekly monitoring" recurs weekly; "Each day" and "Each evening" daily.
    pub fn of(title: &str) -> Every {
        if title.to_lowercase().contains("week") { Every::Week } else { Every::Day }
    }
}

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
    let day = now.millis().div_euclid(86_400_000);
    match every {
        Every::Day => civil_date(day),
        // 1970-01-01 was a Thursday: Monday is 3 days before it.
        Every::Week => format!("week of {}", civil_date(day - (day + 3).rem_euclid(7))),
    }
}

/// Every item of the plan's recurring lists due in the periods holding `now`.
pub fn due(plan: &Plan, now: Timestamp) -> Vec<Due> {
    let mut out = Vec::new();
    for (l, list) in plan.recurring_checklists.iter().enumerate() {
        let period = period(Every::of(&list.title), now);
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
}
