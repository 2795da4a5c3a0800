//! sea-orm entities of ProjectNIL: [`function`] (user code and its compiled
//! module) and [`execution`] (one run of a function), with their status enums.
//! The table definitions and invariants live in the `migration` crate.

pub mod compiled_module;
pub mod execution;
pub mod function;

pub use execution::ExecutionStatus;
pub use function::FunctionStatus;
