//! Rampart's server: the HTTP API, server-side rendering of the dashboard, and the Postgres
//! store behind both.

#![recursion_limit = "256"]

pub mod actors;
pub mod auth;
pub mod background;
pub mod backtest;
pub mod clock;
pub mod config;
pub mod db;
pub mod egress;
pub mod embedded_pg;
pub mod explain;
pub mod flags;
pub mod guard;
pub mod http;
pub mod junit;
pub mod live;
pub mod metrics;
pub mod net;
pub mod prometheus;
pub mod random;
pub mod report;
pub mod sealed;
pub mod service;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;
