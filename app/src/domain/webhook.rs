//! What an outgoing webhook can be told about. The server announces and signs; the admin page
//! lets people pick.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Somebody asked to advance or complete; approvers are needed.
    ApprovalNeeded,
    /// The rollout entered another stage going forward (or started).
    StageChanged,
    /// The flag was rolled back, by a person or by the guard loop.
    RolledBack,
    /// The guard loop raised a review alert.
    Alert,
    /// The last stage was signed off.
    Completed,
}

impl Event {
    pub const ALL: [Event; 5] = [Event::ApprovalNeeded, Event::StageChanged, Event::RolledBack, Event::Alert, Event::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::ApprovalNeeded => "approval_needed",
            Event::StageChanged => "stage_changed",
            Event::RolledBack => "rolled_back",
            Event::Alert => "alert",
            Event::Completed => "completed",
        }
    }

    pub fn parse(text: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == text)
    }

    /// Words for the admin page.
    pub fn label(self) -> &'static str {
        match self {
            Event::ApprovalNeeded => "approval needed",
            Event::StageChanged => "stage changed",
            Event::RolledBack => "rolled back",
            Event::Alert => "review alert",
            Event::Completed => "completed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_names() {
        for event in Event::ALL {
            assert_eq!(Event::parse(event.as_str()), Some(event));
        }
        assert_eq!(Event::parse("stage_moved"), None);
    }
}
