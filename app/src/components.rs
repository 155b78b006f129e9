//! Reusable pieces of the pages, one component per file.

pub mod account;
pub mod actions;
pub mod alerts;
pub mod baseline;
pub mod charts;
pub mod checklist;
pub mod gates;
pub mod impact;
pub mod local_time;
pub mod matrix;
pub mod notice;
pub mod stage_panel;
pub mod stage_track;
pub mod test_runs;
pub mod timeline;
