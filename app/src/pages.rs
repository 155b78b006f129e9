//! One module per routed page.

pub mod admin;
pub mod control_room;
pub mod login;
pub mod overview;
pub mod plan;
pub mod status;
