//! The request and response bodies of the REST contract, built from the same
//! domain records as the GraphQL types. Request fields are optional here so
//! that a missing or null one gets the contract's message naming it.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use sea_orm::ActiveEnum;
use serde_json::Value;
use uuid::Uuid;

use super::error::RestError;
use crate::functions::{FunctionChanges, FunctionRecord, NewFunction};
use entity::execution;

/// A function as submitted (POST and PUT). Unknown fields are ignored.
#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct FunctionRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Only "assemblyscript" today.
    pub language: Option<String>,
    /// AssemblyScript exporting `handle(input: string): string`.
    pub source: Option<String>,
}

impl FunctionRequest {
    /// The language first (415 when missing or unsupported, as the contract
    /// orders), then each required field; the domain validates the rest.
    fn required(self) -> Result<NewFunction, RestError> {
        let language = self
            .language
            .filter(|l| !l.trim().is_empty())
            .ok_or_else(|| {
                RestError::new(
                    poem::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported language: none given; set \"language\": \"assemblyscript\"",
                )
            })?;
        crate::functions::check_language(&language)?;
        let name = required("name", self.name)?;
        let source = required("source", self.source)?;
        Ok(NewFunction {
            name,
            description: self.description,
            language,
            source,
        })
    }

    pub fn into_new(self) -> Result<NewFunction, RestError> {
        self.required()
    }

    /// PUT replaces the function: an omitted description clears it.
    pub fn into_changes(self) -> Result<FunctionChanges, RestError> {
        let new = self.required()?;
        Ok(FunctionChanges {
            name: Some(new.name),
            description: Some(new.description),
            language: Some(new.language),
            source: Some(new.source),
        })
    }
}

fn required(field: &str, value: Option<String>) -> Result<String, RestError> {
    value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        RestError::bad_request(format!("\"{field}\" is required and must not be empty"))
    })
}

#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct FunctionResponse {
    pub id: Uuid,
    pub name: String,
    /// PENDING, COMPILING, READY or FAILED (of the latest revision).
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl From<FunctionRecord> for FunctionResponse {
    fn from(r: FunctionRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            status: r.status.to_value(),
            created_at: r.created_at,
        }
    }
}

#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct FunctionDetails {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    pub source: String,
    /// PENDING, COMPILING, READY or FAILED (of the latest revision).
    pub status: String,
    pub compile_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest revision.
    pub revision: i64,
    /// The READY revision executions run; null while none has compiled.
    pub deployed_revision: Option<i64>,
    /// Size of the latest revision's module; null unless it is READY.
    pub wasm_size: Option<i32>,
}

impl From<FunctionRecord> for FunctionDetails {
    fn from(r: FunctionRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            language: r.language,
            source: r.source,
            status: r.status.to_value(),
            compile_error: r.compile_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            revision: r.revision,
            deployed_revision: r.deployed_revision,
            wasm_size: r.wasm_size,
        }
    }
}

/// `input` omitted or null means `{}`.
#[derive(Object, Debug, Default)]
pub struct ExecutionRequest {
    pub input: Option<Value>,
}

#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct ExecutionResponse {
    pub id: Uuid,
    pub function_id: Uuid,
    /// PENDING, RUNNING, COMPLETED or FAILED.
    pub status: String,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The function revision that ran.
    pub revision: i64,
    pub attempt: i32,
    /// completedAt - startedAt in milliseconds; null until finished.
    pub duration_ms: Option<f64>,
}

impl From<execution::Model> for ExecutionResponse {
    fn from(m: execution::Model) -> Self {
        let duration_ms = execution::duration_ms(m.started_at, m.completed_at);
        Self {
            id: m.id,
            function_id: m.function_id,
            status: m.status.to_value(),
            input: m.input,
            output: m.output,
            error_message: m.error_message,
            started_at: m.started_at,
            completed_at: m.completed_at,
            created_at: m.created_at,
            revision: m.revision,
            attempt: m.attempt,
            duration_ms,
        }
    }
}

#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct ExecutionSummary {
    pub id: Uuid,
    /// PENDING, RUNNING, COMPLETED or FAILED.
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl From<execution::Model> for ExecutionSummary {
    fn from(m: execution::Model) -> Self {
        Self {
            id: m.id,
            status: m.status.to_value(),
            started_at: m.started_at,
            completed_at: m.completed_at,
            revision: m.revision,
        }
    }
}

/// `{"status": "UP"}`.
#[derive(Object, Debug)]
pub struct Health {
    pub status: String,
}
