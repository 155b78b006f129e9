//! One module per routed page.

pub mod control_room;
pub mod status;
