//! sea-orm entities of ProjectNIL: [`function`] (user code and its deploy
//! state), [`function_version`] (one immutable revision and its compile
//! outcome), [`module`] (a compiled module, once per content) and
//! [`execution`] (one run of a function), with their status enums.
//! The table definitions and invariants live in the `migration` crate.

pub mod compiled_module;
pub mod execution;
pub mod function;
pub mod function_version;
pub mod module;

pub use execution::{ExecutionErrorKind, ExecutionStatus};
pub use function::FunctionStatus;
