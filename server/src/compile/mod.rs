//! The compilation pipeline. A [`worker`] takes `compilation_jobs` from pgmq,
//! compiles them with a warm AssemblyScript compiler ([`asc`]), checks the module
//! against the function ABI ([`validate`]) and publishes `compilation_results`;
//! the [`results`] consumer (in `serve`) applies them to the functions,
//! idempotently. Identical inputs are compiled once ([`content_cache`]).

pub mod asc;
pub mod content_cache;
pub mod results;
pub mod validate;
pub mod worker;

/// The contract's example function (`{"a": 5, "b": 3}` → `{"sum": 8}`), kept
/// once beside the compiler: the compiler warms up on it, and the dashboard's
/// template, the README, the tests and the benchmarks use it from here.
pub const EXAMPLE_SOURCE: &str = include_str!("../../compiler/example.ts");
/// Where [`EXAMPLE_SOURCE`] lives, relative to the repository root.
pub const EXAMPLE_PATH: &str = "server/compiler/example.ts";

/// Flags every module is compiled with (part of the content-cache key).
pub const ASC_FLAGS: &str =
    "--exportRuntime --runtime incremental --optimize --transform json-as/transform";
