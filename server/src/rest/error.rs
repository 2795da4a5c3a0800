//! The REST error body of the contract, `{"timestamp", "status", "error",
//! "message"}`, for every failure: the domain's errors, the request's own
//! (bad JSON, a wrong content type, an id that is not a UUID), and the
//! routing's (unknown path, wrong method), so a client parses one shape.

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::executions::ExecutionError;
use crate::functions::FunctionError;

/// What went wrong, for a person to act on.
#[derive(Object, Debug, Clone)]
pub struct ErrorBody {
    pub timestamp: DateTime<Utc>,
    /// The HTTP status code.
    pub status: u16,
    /// The status code's reason phrase.
    pub error: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            timestamp: Utc::now(),
            status: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").to_string(),
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Json(self).with_status(status).into_response()
    }
}

/// Every error a REST operation answers, as documented in the OpenAPI
/// document.
#[derive(ApiResponse, Debug)]
pub enum RestError {
    /// Invalid JSON, a missing or empty field, an id that is not a UUID, or input that is not an object.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Access control is on and the request has no valid API key.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such function, execution or route.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The function name is taken.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The body is over the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is not application/json, or the language is missing or not supported.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The platform is at capacity: nothing was recorded; try again.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>),
    /// A platform failure (never the function's own: that is a FAILED execution).
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

impl RestError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let body = Json(ErrorBody::new(status, message));
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest(body),
            StatusCode::UNAUTHORIZED => Self::Unauthorized(body),
            StatusCode::NOT_FOUND => Self::NotFound(body),
            StatusCode::CONFLICT => Self::Conflict(body),
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(body),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(body),
            StatusCode::TOO_MANY_REQUESTS => Self::TooManyRequests(body),
            _ => Self::Internal(Json(ErrorBody::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                body.0.message,
            ))),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn function_not_found(id: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("Function not found: {id}"))
    }

    /// Logs the cause; the client learns only that it was the platform's fault.
    fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "rest.internal_error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: the platform failed; try again",
        )
    }
}

/// The message for an error poem-openapi raised while it read a request,
/// before a handler ran (see [`super::ErrorBodies`]).
pub(super) fn request_error_message(error: &poem::Error) -> String {
    use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
    if let Some(payload) = error.downcast_ref::<ParseRequestPayloadError>() {
        return format!("the request body is not valid JSON: {}", payload.reason);
    }
    if error.is::<ContentTypeError>() {
        return "the request body must be JSON, sent with Content-Type: application/json".into();
    }
    error.to_string()
}

impl From<sea_orm::DbErr> for RestError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::db(&e)
    }
}

impl RestError {
    /// A value the database refused is the request's fault, never an outage.
    fn db(e: &sea_orm::DbErr) -> Self {
        if crate::db::refused_value(e) {
            tracing::warn!(error = %e, "rest.value_refused");
            return Self::bad_request(
                "the database refused a value of this request (for example a NUL character); change it and try again",
            );
        }
        Self::internal(e)
    }
}

impl From<FunctionError> for RestError {
    fn from(e: FunctionError) -> Self {
        let status = match &e {
            FunctionError::Invalid(_) | FunctionError::NotDeployable { .. } => {
                StatusCode::BAD_REQUEST
            }
            FunctionError::UnsupportedLanguage(language) => {
                return Self::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("Unsupported language: {language}"),
                );
            }
            FunctionError::SourceTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            FunctionError::NotFound(id) => return Self::function_not_found(id),
            FunctionError::VersionNotFound { .. } => StatusCode::NOT_FOUND,
            FunctionError::NameTaken(_) | FunctionError::Conflict { .. } => StatusCode::CONFLICT,
            FunctionError::BacklogFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            FunctionError::Db(db) => return Self::db(db),
            FunctionError::Queue(q) => return Self::internal(q),
        };
        Self::new(status, e.to_string())
    }
}

impl From<ExecutionError> for RestError {
    fn from(e: ExecutionError) -> Self {
        match &e {
            ExecutionError::InputNotObject(kind) => {
                Self::bad_request(format!("Input must be a JSON object, got {kind}"))
            }
            ExecutionError::InputHasNul => Self::bad_request(e.to_string()),
            ExecutionError::InputTooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            ExecutionError::FunctionNotFound(id) => Self::function_not_found(id),
            ExecutionError::FunctionNotReady { id, status } => Self::bad_request(format!(
                "Function {id} is not ready: no revision has compiled yet (its latest is {status})"
            )),
            ExecutionError::NotFound(id) | ExecutionError::Vanished(id) => {
                Self::new(StatusCode::NOT_FOUND, format!("Execution not found: {id}"))
            }
            ExecutionError::QueueFull { .. } | ExecutionError::BacklogFull { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            ExecutionError::Db(db) => Self::db(db),
            ExecutionError::Task(_) => Self::internal(&e),
        }
    }
}
