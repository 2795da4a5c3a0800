//! The one place where failures become GraphQL errors: every error carries an
//! `extensions.code` from the contract's list and a message a user can act on.
//! Internal details (database errors) are logged, never shown.

use crate::analytics::AnalyticsError;

use async_graphql::{Error, ErrorExtensions, Response, ServerError};

use crate::executions::ExecutionError;
use crate::functions::FunctionError;
use crate::pagination::PageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadUserInput,
    NotFound,
    FunctionNotReady,
    UnsupportedLanguage,
    PayloadTooLarge,
    Unauthenticated,
    Conflict,
    TooManyRequests,
    InternalServerError,
}

impl ErrorCode {
    /// Every code of the contract.
    pub const ALL: [Self; 9] = [
        Self::BadUserInput,
        Self::NotFound,
        Self::FunctionNotReady,
        Self::UnsupportedLanguage,
        Self::PayloadTooLarge,
        Self::Unauthenticated,
        Self::Conflict,
        Self::TooManyRequests,
        Self::InternalServerError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::NotFound => "NOT_FOUND",
            Self::FunctionNotReady => "FUNCTION_NOT_READY",
            Self::UnsupportedLanguage => "UNSUPPORTED_LANGUAGE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Conflict => "CONFLICT",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// The body of a GraphQL request refused before the schema ran it (access,
/// size, method, malformed request): the shape every GraphQL client reads.
pub fn refusal_body(code: ErrorCode, message: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] })
}

/// An error on its way to the client. Deliberately not `Display`, so `?` cannot
/// turn it into a GraphQL error without its code.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message)
    }

    /// Logs the cause and tells the client only that it was our fault.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "api.internal_error");
        Self::new(
            ErrorCode::InternalServerError,
            "internal error: the database is unavailable or failed; try again",
        )
    }
}

impl ApiError {
    /// Like [`ApiError::internal`], but says what an operator or a client can
    /// do about it when PostgreSQL told why: it cancelled the statement (a
    /// `statement_timeout`, an operator's `pg_cancel_backend`), or it ran out
    /// of disk space or another resource.
    pub fn internal_db(cause: &sea_orm::DbErr) -> Self {
        let sqlstate = crate::db::refusal(cause).map(|(code, _)| code);
        if crate::db::refused_value(cause) {
            tracing::warn!(error = %cause, "api.value_refused");
            return Self::bad_input(
                "the database refused a value of this request (for example a NUL character); change it and try again",
            );
        }
        let message = match sqlstate.as_deref() {
            Some(QUERY_CANCELED) => {
                "internal error: the database cancelled the query (a statement timeout or an operator); try again"
            }
            Some(DISK_FULL) => {
                "internal error: the database is out of disk space; try again once an operator has freed space"
            }
            Some(code) if code.starts_with(INSUFFICIENT_RESOURCES) => {
                "internal error: the database is out of resources (memory or connections); try again later"
            }
            _ => return Self::internal(cause),
        };
        tracing::warn!(error = %cause, "api.database_refused");
        Self::new(ErrorCode::InternalServerError, message)
    }
}

/// SQLSTATE of a statement cancelled by a timeout or by request.
const QUERY_CANCELED: &str = "57014";
/// SQLSTATE of a write that found no disk space.
const DISK_FULL: &str = "53100";
/// SQLSTATE class of disk full, out of memory and too many connections.
const INSUFFICIENT_RESOURCES: &str = "53";

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::new(e.message).extend_with(|_, ext| ext.set("code", e.code.as_str()))
    }
}

impl From<FunctionError> for ApiError {
    fn from(e: FunctionError) -> Self {
        let code = match &e {
            FunctionError::Invalid(_) => ErrorCode::BadUserInput,
            FunctionError::UnsupportedLanguage(_) => ErrorCode::UnsupportedLanguage,
            FunctionError::SourceTooLarge { .. } => ErrorCode::PayloadTooLarge,
            FunctionError::NotFound(_) | FunctionError::VersionNotFound { .. } => {
                ErrorCode::NotFound
            }
            FunctionError::Conflict { .. } | FunctionError::NameTaken(_) => ErrorCode::Conflict,
            FunctionError::NotDeployable { .. } => ErrorCode::BadUserInput,
            FunctionError::BacklogFull { .. } => ErrorCode::TooManyRequests,
            FunctionError::Db(db) => return Self::internal_db(db),
            FunctionError::Queue(q) => return Self::internal(q),
        };
        Self::new(code, e.to_string())
    }
}

impl From<ExecutionError> for ApiError {
    fn from(e: ExecutionError) -> Self {
        let code = match &e {
            ExecutionError::InputNotObject(_) | ExecutionError::InputHasNul => {
                ErrorCode::BadUserInput
            }
            ExecutionError::InputTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ExecutionError::FunctionNotFound(_) => ErrorCode::NotFound,
            ExecutionError::FunctionNotReady { .. } => ErrorCode::FunctionNotReady,
            ExecutionError::NotFound(_) | ExecutionError::Vanished(_) => ErrorCode::NotFound,
            ExecutionError::QueueFull { .. } | ExecutionError::BacklogFull { .. } => {
                ErrorCode::TooManyRequests
            }
            ExecutionError::Task(_) => return Self::internal(&e),
            ExecutionError::Db(db) => return Self::internal_db(db),
        };
        Self::new(code, e.to_string())
    }
}

impl From<AnalyticsError> for ApiError {
    fn from(e: AnalyticsError) -> Self {
        match e {
            AnalyticsError::BadArgument(message) => Self::bad_input(message),
            AnalyticsError::Db(db) => Self::internal_db(&db),
        }
    }
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        Self::bad_input(e.to_string())
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(e: crate::queue::QueueError) -> Self {
        Self::internal(&e)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::internal_db(&e)
    }
}

/// `result.api()?` in resolvers: converts through [`ApiError`] so the code is kept.
pub trait ResultExt<T> {
    fn api(self) -> Result<T, Error>;
}

impl<T, E: Into<ApiError>> ResultExt<T> for Result<T, E> {
    fn api(self) -> Result<T, Error> {
        self.map_err(|e| Error::from(e.into()))
    }
}

/// Gives a code to the errors async-graphql raises itself before any resolver
/// runs (syntax, unknown fields, bad argument values such as a malformed UUID or
/// an unknown enum value, depth and complexity limits): all are the client's.
pub(super) fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        add_default_code(error);
    }
    response
}

/// Syntax errors quote the offending line; on a hostile one-line query of
/// megabytes that would echo it all back, so long lines are left out.
const MAX_QUOTED_LINE: usize = 200;

fn add_default_code(error: &mut ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if !has_code && error.message.len() > 4 * MAX_QUOTED_LINE {
        error.message = error
            .message
            .lines()
            .filter(|line| line.len() <= MAX_QUOTED_LINE)
            .collect::<Vec<_>>()
            .join("\n");
    }
    if !has_code {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", ErrorCode::BadUserInput.as_str());
    }
}
