//! Outgoing webhooks: what is announced, how it is signed, and the dispatcher that delivers it.
//!
//! Deliveries are an outbox: the store writes one row per subscribed webhook in the same
//! transaction as the change it announces, so nothing is announced that did not commit and
//! nothing that committed is lost. The dispatcher claims a few due rows at a time with a lease
//! (`SKIP LOCKED`, so replicas never send the same attempt twice), POSTs them signed, and
//! records every attempt;
//! a failure is retried with backoff until [`BACKOFF`] runs out.
//!
//! Three parts: [`payload`] (what is announced and signed: a leaf the store writes from),
//! [`dispatcher`] (sending) and [`admin`] (the webhook service behind the API).

pub mod admin;
pub mod dispatcher;
pub mod payload;

pub use admin::{Webhooks, reseal};
pub use dispatcher::{BACKOFF, Dispatcher};
pub use payload::{Announcement, Attempt, Event, payload, signature};
