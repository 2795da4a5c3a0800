//! The queue messages of the contract. Extra fields are allowed, so a
//! compiler in another language only has to speak these.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// API → compiler: compile this revision of this function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompilationJob {
    pub function_id: Uuid,
    pub language: String,
    pub source: String,
    /// The function's revision this source belongs to; its result is recorded
    /// on that revision, and moves the function only if it is still the latest
    /// (`functions::deploy`).
    pub revision: i64,
}

/// Compiler → API: how the compilation of one job went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompilationResult {
    pub function_id: Uuid,
    /// Absent from a compiler that does not track revisions: then the result
    /// applies to whatever revision is being compiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    pub success: bool,
    /// The module as standard base64, when `success`.
    pub wasm_binary: Option<String>,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiler_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// API → any process that runs executions: run this background execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionJob {
    pub execution_id: Uuid,
    /// The function and revision accepted, so the runner can load the module
    /// before it records RUNNING; absent from another sender, the runner reads
    /// them from the execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

impl ExecutionJob {
    /// This message as SQL builds it from the `executions` row named `row`,
    /// for a statement that accepts an execution and sends its job at once:
    /// the JSON serialising the job gives (a test in `tests/dependable.rs`
    /// compares them).
    pub fn sql_from(row: &str) -> String {
        format!(
            "jsonb_build_object('executionId', {row}.id, 'functionId', {row}.function_id, \
             'revision', {row}.revision)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_uses_contract_field_names() {
        let job = CompilationJob {
            function_id: Uuid::nil(),
            language: "assemblyscript".into(),
            source: "x".into(),
            revision: 2,
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["functionId"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(json["language"], "assemblyscript");
        assert_eq!(json["revision"], 2);
    }

    #[test]
    fn execution_job_uses_contract_field_names() {
        let job = ExecutionJob {
            execution_id: Uuid::nil(),
            function_id: None,
            revision: Some(3),
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["executionId"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(json["revision"], 3);
        let bare: ExecutionJob =
            serde_json::from_str(r#"{"executionId":"00000000-0000-0000-0000-000000000000"}"#)
                .unwrap();
        assert_eq!((bare.function_id, bare.revision), (None, None));
    }

    #[test]
    fn result_from_a_foreign_compiler_without_extras_decodes() {
        let result: CompilationResult = serde_json::from_str(
            r#"{"functionId":"00000000-0000-0000-0000-000000000000","success":false,"wasmBinary":null,"error":"bad","somethingElse":1}"#,
        )
        .unwrap();
        assert_eq!(result.revision, None);
        assert_eq!(result.error.as_deref(), Some("bad"));
    }
}
