//! The two failure families: the platform's ([`RuntimeError`]) and the user's
//! code's ([`UserCodeError`]). Messages are shown to users, so they never
//! contain host paths or Rust backtraces.

use entity::execution::ExecutionErrorKind;
use wasmtime::Trap;

/// The platform could not run the function at all. A user's function that
/// merely fails produces an [`Invocation`](super::Invocation) with a
/// [`UserCodeError`] instead.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("failed to set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("module failed to compile: {0}")]
    Compile(String),
    /// The module compiled but does not fit the function ABI (missing
    /// `handle`, imports the platform does not provide, ...).
    #[error("module is not a valid function: {0}")]
    InvalidModule(String),
    #[error("failed to instantiate module: {0}")]
    Instantiate(String),
    /// The caller's loader could not produce the module bytes on a cache miss.
    #[error("could not load module bytes: {0}")]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A worker thread or blocking task died (panicked) while running the job.
    #[error("execution worker failed: {0}")]
    Worker(String),
}

/// The user's code failed. `Display` is the message shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserCodeError {
    #[error("timed out after {ms} ms of running time")]
    Timeout { ms: u64 },
    /// Stopped from outside (`cancelExecution`, or the run lost its lease).
    #[error("cancelled while running")]
    Cancelled,
    #[error("memory limit of {mb} MiB exceeded")]
    MemoryLimit { mb: u64 },
    #[error("stack overflow")]
    StackOverflow,
    #[error("unreachable executed")]
    Unreachable,
    #[error("integer divide by zero")]
    DivideByZero,
    #[error("integer overflow")]
    IntegerOverflow,
    /// Any other wasm trap, with a short human description.
    #[error("{0}")]
    Trap(String),
    /// `env.abort`: `throw`, `assert`, or a runtime check inside AssemblyScript.
    #[error("abort: {message} at {file}:{line}:{column}")]
    Abort {
        message: String,
        file: String,
        line: u32,
        column: u32,
    },
    /// `handle` returned something that is not a string in its memory.
    #[error("function returned an invalid string: {0}")]
    InvalidReturn(String),
    #[error("function returned invalid JSON: {preview}")]
    InvalidJson { preview: String },
    /// The returned text holds a UTF-16 surrogate that pairs with nothing,
    /// not even through a `\uXXXX` escape, so it is not valid JSON.
    #[error("function returned a string with an unpaired UTF-16 surrogate at code unit {index}")]
    InvalidUtf16 { index: usize },
    #[error(
        "function returned JSON containing the character U+0000 (NUL), which cannot be stored; remove it from the output"
    )]
    OutputHasNul,
    #[error("output of {bytes} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge { bytes: usize, limit: usize },
}

impl UserCodeError {
    /// The kind recorded with the FAILED execution.
    pub fn kind(&self) -> ExecutionErrorKind {
        match self {
            Self::Timeout { .. } => ExecutionErrorKind::Timeout,
            Self::Cancelled => ExecutionErrorKind::Cancelled,
            Self::MemoryLimit { .. } => ExecutionErrorKind::MemoryLimit,
            Self::StackOverflow => ExecutionErrorKind::StackOverflow,
            Self::Unreachable | Self::DivideByZero | Self::IntegerOverflow | Self::Trap(_) => {
                ExecutionErrorKind::Trap
            }
            Self::Abort { .. } => ExecutionErrorKind::Abort,
            Self::InvalidReturn(_)
            | Self::InvalidJson { .. }
            | Self::InvalidUtf16 { .. }
            | Self::OutputHasNul => ExecutionErrorKind::InvalidOutput,
            Self::OutputTooLarge { .. } => ExecutionErrorKind::OutputTooLarge,
        }
    }
}

/// Short description of a trap that has no dedicated variant.
pub(crate) fn trap_message(trap: Trap) -> UserCodeError {
    match trap {
        Trap::StackOverflow => UserCodeError::StackOverflow,
        Trap::UnreachableCodeReached => UserCodeError::Unreachable,
        Trap::IntegerDivisionByZero => UserCodeError::DivideByZero,
        Trap::IntegerOverflow => UserCodeError::IntegerOverflow,
        Trap::MemoryOutOfBounds => UserCodeError::Trap("out of bounds memory access".into()),
        Trap::TableOutOfBounds => UserCodeError::Trap("out of bounds table access".into()),
        Trap::IndirectCallToNull => UserCodeError::Trap("call to a null function reference".into()),
        Trap::BadSignature => UserCodeError::Trap("indirect call type mismatch".into()),
        Trap::BadConversionToInteger => {
            UserCodeError::Trap("invalid conversion of a float to an integer".into())
        }
        Trap::NullReference => UserCodeError::Trap("null reference".into()),
        other => {
            // wasmtime renders traps as "wasm trap: <description>".
            let text = other.to_string();
            let text = text.strip_prefix("wasm trap: ").unwrap_or(&text);
            UserCodeError::Trap(text.to_owned())
        }
    }
}

/// Render a wasmtime error for a [`RuntimeError`]: the whole cause chain on
/// one line, which is how wasmtime words its compile/link failures.
pub(crate) fn describe(err: &wasmtime::Error) -> String {
    format!("{err:#}")
}
