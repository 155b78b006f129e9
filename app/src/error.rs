//! The error every server function and API call returns: stable, serialisable, and worded for
//! the person who will read it.

use crate::domain::blocker::Blocker;
use crate::domain::rollout::Refusal;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum AppError {
    #[error("{what} not found")]
    NotFound { what: String },
    /// Someone else changed the rollout first; the caller should reload and decide again.
    #[error("{message}")]
    Conflict { message: String, current_version: u64 },
    /// The rules refused the command; `blockers` says what must happen first.
    #[error("{message}")]
    Refused { message: String, blockers: Vec<Blocker> },
    /// A field of the request is wrong.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A document the request carried (a JUnit report) cannot be read at all: where, and why.
    #[error("{field}: line {line}, column {column}: {message}")]
    Malformed { field: String, line: u64, column: u64, message: String },
    /// No credentials: sign in, or send an API token.
    #[error("{message}")]
    Unauthenticated { message: String },
    /// Credentials, but not the role or scope this takes.
    #[error("{message}")]
    Forbidden { message: String },
    /// Too many attempts; try again after `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// The server cannot do this now (its database is down, full or read-only); nothing was
    /// changed, and the same request may be sent again after `retry_after_secs`.
    #[error("{message}")]
    Unavailable { message: String, retry_after_secs: u64 },
    /// A server-side failure; the detail is in the server's log, never in the response.
    #[error("something went wrong on the server; the details are in its log")]
    Internal,
    /// The request did not reach the server or its answer could not be read. (A struct
    /// variant: the error travels as internally tagged JSON, which a bare string cannot be.)
    #[error("could not reach Rampart: {message}")]
    Transport { message: String },
}

impl AppError {
    pub fn not_found(what: impl Into<String>) -> Self {
        AppError::NotFound { what: what.into() }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid { field: field.into(), message: message.into() }
    }

    /// Checks free text a person or a client sends for the record (a note, a reason, a label):
    /// at most `max` characters, and no control character but line breaks and tabs (Postgres
    /// cannot store a NUL, and the others have no business in a sentence).
    pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), AppError> {
        if text.chars().count() > max {
            return Err(AppError::invalid(field, format!("at most {max} characters")));
        }
        if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
            return Err(AppError::invalid(field, "must not contain control characters"));
        }
        Ok(())
    }

    /// The HTTP status this error answers with, the same from the REST API and from a server
    /// function: a caller's mistake is never a 500.
    pub fn status(&self) -> u16 {
        match self {
            AppError::NotFound { .. } => 404,
            AppError::Conflict { .. } => 409,
            AppError::Refused { .. } | AppError::Invalid { .. } => 422,
            AppError::Malformed { .. } => 400,
            AppError::Unauthenticated { .. } => 401,
            AppError::Forbidden { .. } => 403,
            AppError::TooManyRequests { .. } => 429,
            AppError::Unavailable { .. } => 503,
            AppError::Internal | AppError::Transport { .. } => 500,
        }
    }
}

impl From<crate::domain::access::Denied> for AppError {
    fn from(denied: crate::domain::access::Denied) -> Self {
        match denied {
            crate::domain::access::Denied::Unauthenticated => {
                AppError::Unauthenticated { message: "sign in, or send an API token as `Authorization: Bearer …`".into() }
            }
            crate::domain::access::Denied::Forbidden(message) => AppError::Forbidden { message },
        }
    }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::Conflict { current, .. } => AppError::Conflict { message, current_version: current.0 },
            Refusal::Blocked { blockers } => AppError::Refused { message, blockers },
            _ => AppError::Refused { message, blockers: Vec::new() },
        }
    }
}

/// A lost race as a person reads it beside the form they sent, with the page's script or without.
const LOST_RACE: &str = "Someone else acted first; the page now shows the current state.";

impl AppError {
    /// The refusal as a person reads it beside the form they sent: a lost race says what
    /// happens next (the page shows the current state) rather than which versions crossed.
    pub fn for_the_form(&self) -> String {
        match self {
            AppError::Conflict { .. } => LOST_RACE.to_string(),
            other => other.to_string(),
        }
    }

    /// Makes the response being rendered (a server function's, or a page's) carry this
    /// error's status.
    #[cfg(feature = "ssr")]
    pub fn answer_with_status(&self) {
        if let (Some(response), Ok(status)) =
            (leptos::prelude::use_context::<leptos_axum::ResponseOptions>(), http::StatusCode::from_u16(self.status()))
        {
            response.set_status(status);
        }
    }

    /// A refusal as a page says it when it came in the page's address (`__err`, below): anyone
    /// can write such a link, so the page says only the kind of refusal, in its own words.
    pub fn said_by_a_link(&self) -> &'static str {
        match self {
            AppError::Conflict { .. } => LOST_RACE,
            AppError::Refused { .. } => "The rules refused the command; the page shows what it waits for.",
            AppError::Unauthenticated { .. } => "Sign in first.",
            AppError::Forbidden { .. } => "Your role may not do this.",
            AppError::Invalid { .. } | AppError::Malformed { .. } => "The form was not complete; nothing was done.",
            AppError::TooManyRequests { .. } | AppError::Unavailable { .. } => "The server could not do this now; try again shortly.",
            _ => "The server could not do this; nothing was done.",
        }
    }

    /// The refusal a plain form (no JavaScript) came back with: the server function redirects
    /// a form post back to its page with `__path` (which function) and `__err` (the error), and
    /// the page shows it where the form is ([`AppError::said_by_a_link`]). `None` when the page
    /// was not loaded that way, or for another function than the one at `path`.
    pub fn from_form_redirect(query_path: Option<&str>, query_err: Option<&str>, path: &str) -> Option<AppError> {
        (query_path? == path).then(|| leptos::server_fn::error::ServerFnUrlError::<AppError>::decode_err(query_err.unwrap_or_default()))
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The form's fields did not make the function's arguments: the caller's mistake.
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) | ServerFnErrorErr::Deserialization(message) => {
                AppError::Invalid { field: "form".into(), message }
            }
            other => AppError::Transport { message: other.to_string() },
        }
    }

    /// The error as the server function's answer — with its own status, not the 500 server
    /// functions answer every error with by default.
    fn ser(&self) -> leptos::server_fn::Bytes {
        // Not for a plain HTML form post (no script yet, or none at all): leptos_axum answers
        // that with a redirect back to the page carrying the error, which a 4xx status would
        // turn into a dead end.
        #[cfg(feature = "ssr")]
        let from_a_page = leptos::prelude::use_context::<http::request::Parts>().is_some_and(|parts| {
            parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
        });
        #[cfg(feature = "ssr")]
        if !from_a_page {
            self.answer_with_status();
        }
        use leptos::server_fn::Encodes;
        JsonEncoding::encode(self).unwrap_or_else(|_| leptos::server_fn::Bytes::from_static(br#"{"error":"internal"}"#))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_serialises_for_the_browser() {
        // A server function's error is sent as JSON; one that cannot be would panic the handler.
        let errors = [
            AppError::not_found("rollout"),
            AppError::invalid("note", "empty"),
            AppError::Internal,
            AppError::Malformed { field: "body".into(), line: 3, column: 7, message: "unclosed <testcase>".into() },
            AppError::Unavailable { message: "the database is unavailable".into(), retry_after_secs: 5 },
            AppError::Transport { message: "connection refused".into() },
            AppError::from_server_fn_error(ServerFnErrorErr::Args("id: invalid digit".into())),
        ];
        for error in errors {
            let json = serde_json::to_string(&error).expect("serialises");
            assert_eq!(serde_json::from_str::<AppError>(&json).unwrap(), error);
        }
        assert!(matches!(AppError::from_server_fn_error(ServerFnErrorErr::Args("x".into())), AppError::Invalid { .. }));
    }
}
