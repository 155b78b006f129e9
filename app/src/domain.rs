//! The rollout domain as plain data and functions: no I/O, no clock, no framework. The server
//! and the browser both link it, so the UI can explain a refusal with the same rules that made it.

pub mod access;
pub mod blocker;
pub mod bucketing;
pub mod calibration;
pub mod event;
pub mod gates;
pub mod guard;
pub mod impact;
pub mod matrix;
pub mod plan;
pub mod power;
pub mod readiness;
pub mod receipt;
pub mod rollout;
pub mod routines;
pub mod sequential;
pub mod sketch;
pub mod source;
pub mod stats;
pub mod status;
pub mod units;
pub mod webhook;
