//! The names Rampart itself acts under in the audit trail (a leaf).

/// What Rampart does on its own: creating the first rollout and the first admin.
pub const SYSTEM_ACTOR: &str = "rampart";

/// The guard loop's automatic rollbacks and alerts.
pub const GUARD_ACTOR: &str = "rampart guard";
