//! Who may do what. One function, [`check`], decides for every REST handler, every server
//! function and every button the UI shows; nothing else grants or refuses.
//!
//! People have a [`Role`]; each role can do everything the one before it can. Machines hold
//! tokens with [`Scope`]s. A share link reads one rollout's status page and nothing else.

use crate::domain::rollout::Command;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A person's role, weakest first: each role includes the permissions of the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Stakeholders: read-only.
    Viewer,
    /// Tick checklists, pause, ask to advance.
    Operator,
    /// Approve advances, start, resume, roll back, override, acknowledge alerts.
    Approver,
    /// Users, tokens, share links, plans and settings.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API token may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send metrics events.
    Ingest,
    /// Ask whether the flag is on (REST, SSE and OFREP).
    Evaluate,
    /// Read rollouts, metrics and status.
    Read,
    /// Start, ask to advance, pause, resume, roll back, tick checklists, acknowledge alerts and
    /// report test results (CI and scripts). Approving and overriding take a person.
    Drive,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Evaluate, Scope::Read, Scope::Drive];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Evaluate => "evaluate",
            Scope::Read => "read",
            Scope::Drive => "drive",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Everything that needs permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// The control room, metrics, baselines, flags and the audit trail.
    ReadRollout,
    /// One rollout's stakeholder status page.
    ReadStatus {
        rollout_id: i64,
    },
    /// Ask whether a flag is on for a unit.
    EvaluateFlags,
    /// Send metrics events.
    IngestEvents,
    TickChecklist,
    Pause,
    /// Ask to advance or complete (approvers then approve).
    RequestAdvance,
    /// Begin stage 0.
    Start,
    /// Approve or decline a requested advance.
    Approve,
    Resume,
    RollBack,
    /// Advance or complete past a failing or inconclusive gate, with a written reason.
    Override,
    AcknowledgeAlert,
    CaptureBaseline,
    /// Report a CI test suite's result.
    ReportTests,
    /// Report user complaints (for the complaint-rate review rule).
    ReportComplaints,
    /// Write the final report's lessons learned and recommendations.
    WriteReport,
    ManageUsers,
    ManageWebhooks,
    ManageTokens,
    ManageShareLinks,
}

impl Permission {
    /// The weakest role that holds this permission, or `None` when only machines hold it.
    pub fn role(self) -> Option<Role> {
        use Permission::*;
        match self {
            ReadRollout | ReadStatus { .. } | EvaluateFlags => Some(Role::Viewer),
            TickChecklist | Pause | RequestAdvance | ReportTests | ReportComplaints | WriteReport => Some(Role::Operator),
            Start | Approve | Resume | RollBack | Override | AcknowledgeAlert | CaptureBaseline => Some(Role::Approver),
            ManageUsers | ManageTokens | ManageShareLinks | ManageWebhooks => Some(Role::Admin),
            IngestEvents => None,
        }
    }

    /// The token scope that grants this permission, or `None` when only people hold it.
    pub fn scope(self) -> Option<Scope> {
        use Permission::*;
        match self {
            IngestEvents | ReportComplaints => Some(Scope::Ingest),
            EvaluateFlags => Some(Scope::Evaluate),
            ReadRollout | ReadStatus { .. } => Some(Scope::Read),
            TickChecklist | Pause | RequestAdvance | Start | Resume | RollBack | AcknowledgeAlert | CaptureBaseline | ReportTests
            | WriteReport => Some(Scope::Drive),
            // Deciding to go on is a person's call: no token approves or overrides.
            Approve | Override | ManageUsers | ManageTokens | ManageShareLinks | ManageWebhooks => None,
        }
    }

    /// Words for a refusal: "… may not {describe}".
    pub fn describe(self) -> &'static str {
        use Permission::*;
        match self {
            ReadRollout => "read rollouts",
            ReadStatus { .. } => "read this status page",
            EvaluateFlags => "evaluate flags",
            IngestEvents => "send metrics events",
            TickChecklist => "tick checklist items",
            Pause => "pause a rollout",
            RequestAdvance => "ask to advance a rollout",
            Start => "start a rollout",
            Approve => "approve or decline a stage change",
            Resume => "resume a rollout",
            RollBack => "roll back a rollout",
            Override => "override a gate",
            AcknowledgeAlert => "acknowledge alerts",
            CaptureBaseline => "record a baseline",
            ReportTests => "report test results",
            ReportComplaints => "report user complaints",
            WriteReport => "write the report's lessons and recommendations",
            ManageWebhooks => "manage webhooks",
            ManageUsers => "manage users",
            ManageTokens => "manage API tokens",
            ManageShareLinks => "manage share links",
        }
    }
}

impl Command {
    /// What giving this command takes. An override reason makes an advance an override.
    pub fn permission(&self) -> Permission {
        match self {
            Command::Advance { override_reason: Some(_) } | Command::Complete { override_reason: Some(_) } => Permission::Override,
            Command::Advance { .. } | Command::Complete { .. } => Permission::RequestAdvance,
            Command::Start => Permission::Start,
            Command::Approve | Command::Decline { .. } => Permission::Approve,
            Command::Pause { .. } => Permission::Pause,
            Command::Resume => Permission::Resume,
            Command::RollBack { .. } => Permission::RollBack,
        }
    }
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// Nobody has shown credentials.
    Anonymous,
    /// A person signed in.
    User { id: i64, name: String, role: Role },
    /// A machine with an API token.
    Token { id: i64, name: String, scopes: Vec<Scope> },
    /// Someone holding a share link to one rollout's status page.
    ShareLink { id: i64, rollout_id: i64 },
}

/// Why [`check`] said no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credentials: sign in or send a token (401).
    Unauthenticated,
    /// Credentials, but not enough (403).
    Forbidden(String),
}

impl Principal {
    /// The name the audit trail records.
    pub fn actor(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::User { name, .. } => name.clone(),
            Principal::Token { name, .. } => format!("token:{name}"),
            Principal::ShareLink { id, .. } => format!("share-link:{id}"),
        }
    }

    /// Who the caller is, unambiguously (by kind and id; names need not be unique): what keys
    /// of the caller's own, such as idempotency keys, are scoped by.
    pub fn identity(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::User { id, .. } => format!("user#{id}"),
            Principal::Token { id, .. } => format!("token#{id}"),
            Principal::ShareLink { id, .. } => format!("share-link#{id}"),
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::User { role, .. } => Some(*role),
            _ => None,
        }
    }

    /// Whether [`check`] allows `permission`, for views that hide or disable controls.
    pub fn may(&self, permission: Permission) -> bool {
        check(self, permission).is_ok()
    }
}

/// The one permission check.
pub fn check(principal: &Principal, permission: Permission) -> Result<(), Denied> {
    let allowed = match principal {
        Principal::Anonymous => return Err(Denied::Unauthenticated),
        Principal::User { role, .. } => permission.role().is_some_and(|needed| *role >= needed),
        Principal::Token { scopes, .. } => permission.scope().is_some_and(|needed| scopes.contains(&needed)),
        Principal::ShareLink { rollout_id, .. } => {
            matches!(permission, Permission::ReadStatus { rollout_id: r } if r == *rollout_id)
        }
    };
    if allowed {
        return Ok(());
    }
    let who = match principal {
        Principal::User { name, role, .. } => format!("{name} ({role})"),
        Principal::Token { name, .. } => {
            let scope = match (permission.scope(), permission.role()) {
                (Some(scope), _) => format!("the `{}` scope", scope.as_str()),
                (None, Some(role)) => format!("a person signed in as {role}"),
                (None, None) => "a person".to_string(),
            };
            return Err(Denied::Forbidden(format!("token {name} may not {}: it needs {scope}", permission.describe())));
        }
        Principal::ShareLink { .. } => "a share link".into(),
        Principal::Anonymous => unreachable!("refused above"),
    };
    let needed = match permission.role() {
        Some(role) => format!("it takes the {role} role"),
        None => "it takes an API token".into(),
    };
    Err(Denied::Forbidden(format!("{who} may not {}: {needed}", permission.describe())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> Principal {
        Principal::User { id: 1, name: "ana".into(), role }
    }

    #[test]
    fn each_role_includes_the_ones_before_it() {
        let permissions = [
            Permission::ReadRollout,
            Permission::TickChecklist,
            Permission::Pause,
            Permission::Approve,
            Permission::Override,
            Permission::RollBack,
            Permission::ManageUsers,
        ];
        for p in permissions {
            let needed = p.role().unwrap();
            for role in Role::ALL {
                assert_eq!(user(role).may(p), role >= needed, "{role} / {p:?}");
            }
        }
    }

    #[test]
    fn people_never_ingest_and_tokens_never_administer() {
        assert!(!user(Role::Admin).may(Permission::IngestEvents));
        let everything = Principal::Token { id: 1, name: "ci".into(), scopes: Scope::ALL.to_vec() };
        assert!(!everything.may(Permission::ManageUsers));
        assert!(!everything.may(Permission::ManageTokens));
        assert!(everything.may(Permission::RequestAdvance));
    }

    #[test]
    fn only_people_approve_or_override() {
        let everything = Principal::Token { id: 1, name: "ci".into(), scopes: Scope::ALL.to_vec() };
        assert_eq!(
            check(&everything, Permission::Approve),
            Err(Denied::Forbidden("token ci may not approve or decline a stage change: it needs a person signed in as approver".into()))
        );
        assert!(!everything.may(Permission::Override));
        assert!(user(Role::Operator).may(Permission::RequestAdvance));
        assert!(!user(Role::Operator).may(Permission::Approve));
        assert!(user(Role::Approver).may(Permission::Approve));
    }

    #[test]
    fn a_token_holds_only_its_scopes() {
        let ingest = Principal::Token { id: 1, name: "upload-svc".into(), scopes: vec![Scope::Ingest] };
        assert!(ingest.may(Permission::IngestEvents));
        assert!(!ingest.may(Permission::EvaluateFlags));
        assert_eq!(
            check(&ingest, Permission::ReadRollout),
            Err(Denied::Forbidden("token upload-svc may not read rollouts: it needs the `read` scope".into()))
        );
    }

    #[test]
    fn a_share_link_reads_its_own_status_page_only() {
        let link = Principal::ShareLink { id: 3, rollout_id: 7 };
        assert!(link.may(Permission::ReadStatus { rollout_id: 7 }));
        assert!(!link.may(Permission::ReadStatus { rollout_id: 8 }));
        assert!(!link.may(Permission::ReadRollout));
    }

    #[test]
    fn nobody_anonymous_gets_anything() {
        assert_eq!(check(&Principal::Anonymous, Permission::ReadRollout), Err(Denied::Unauthenticated));
    }

    #[test]
    fn refusals_name_the_role_needed() {
        assert_eq!(
            check(&user(Role::Operator), Permission::RollBack),
            Err(Denied::Forbidden("ana (operator) may not roll back a rollout: it takes the approver role".into()))
        );
    }

    #[test]
    fn an_override_reason_makes_an_advance_an_override() {
        assert_eq!(Command::Advance { override_reason: None }.permission(), Permission::RequestAdvance);
        assert_eq!(Command::Approve.permission(), Permission::Approve);
        assert_eq!(Command::Advance { override_reason: Some("known".into()) }.permission(), Permission::Override);
        assert_eq!(Command::Pause { reason: None }.permission(), Permission::Pause);
    }
}
