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

/// Flags every module is compiled with (part of the content-cache key).
pub const ASC_FLAGS: &str =
    "--exportRuntime --runtime incremental --optimize --transform json-as/transform";
