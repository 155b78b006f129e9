//! The API's error response: the `AppError` as JSON with a human `message`, and the status code
//! that goes with it. Server-side failures say nothing about their cause; the log has it.

use app::error::AppError;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        ApiError(error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError(AppError::invalid("body", rejection.body_text()))
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON body: the error's fields plus a human `message`.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(&self.0).unwrap_or_default();
        if let Some(object) = body.as_object_mut() {
            object.insert("message".into(), self.0.to_string().into());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let AppError::TooManyRequests { retry_after_secs, .. } | AppError::Unavailable { retry_after_secs, .. } = &self.0 {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, (*retry_after_secs).into());
        }
        if let AppError::Unauthenticated { .. } = &self.0 {
            response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error kind the API can answer is one the OpenAPI document lists (schemathesis found
    /// `malformed` missing), and every listed one exists.
    #[test]
    fn the_openapi_error_kinds_are_the_app_errors() {
        let errors = [
            AppError::not_found("rollout"),
            AppError::Conflict { message: String::new(), current_version: 1 },
            AppError::Refused { message: String::new(), blockers: Vec::new() },
            AppError::invalid("f", "m"),
            AppError::Malformed { field: "body".into(), line: 1, column: 1, message: String::new() },
            AppError::Unauthenticated { message: String::new() },
            AppError::Forbidden { message: String::new() },
            AppError::TooManyRequests { message: String::new(), retry_after_secs: 1 },
            AppError::Unavailable { message: String::new(), retry_after_secs: 5 },
            AppError::Internal,
        ];
        let line =
            super::super::OPENAPI.lines().find(|l| l.trim_start().starts_with("error: { type: string, enum: [")).expect("the Error schema");
        let listed: std::collections::BTreeSet<&str> =
            line.split('[').nth(1).unwrap().split(']').next().unwrap().split(',').map(str::trim).collect();
        let answered: std::collections::BTreeSet<String> =
            errors.iter().map(|e| ApiError(e.clone()).body()["error"].as_str().unwrap().to_string()).collect();
        // (`transport` is the browser's own: the API never answers with it.)
        assert_eq!(answered.iter().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), listed);
    }
}
