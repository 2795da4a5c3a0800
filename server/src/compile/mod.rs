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

/// Flags every module is compiled with (part of the content-cache key); the
/// compiler process gets them from here too.
pub const ASC_FLAGS: &str = "--exportRuntime --runtime incremental \
     --optimizeLevel 0 --shrinkLevel 0 --runPasses inlining --transform json-as/transform";

/// Largest module a compile may produce. AssemblyScript modules are tens of
/// kilobytes; a source can still ask for megabytes of static data
/// (`memory.data(n)` at `-O0` writes `n` zero bytes), which would be carried
/// through the compiler's reply, the queue and the module cache several times
/// over. The compiler process refuses a larger one as a compile error, and
/// [`validate::validate_module`] refuses one from any compiler.
pub const MAX_MODULE_BYTES: usize = 8 * 1024 * 1024;
/// Most characters of compiler diagnostics kept (the compiler process cuts
/// the rest, saying how much): a source can make asc report an error per
/// statement, each quoting its line.
pub const MAX_DIAGNOSTICS_CHARS: usize = 64 * 1024;

/// Binaryen's part within [`ASC_FLAGS`]: no optimisation pipeline, only its
/// inlining pass. The pipeline was most of a compile (`-O1` spent about 100
/// ms of 340 in it). Cranelift optimises each function again when the server
/// compiles the module, but does not inline AssemblyScript's many small
/// runtime helpers (its own inlining made preparing a module 6× slower), and
/// that is what plain `-O0` lost: CPU-bound code ran 2.8× slower. With the
/// inlining pass, compiles take about 40 % less than at `-O1` and code runs
/// in 1.0–1.2× `-O1`'s time (BENCHMARKS.md, "Compile: Binaryen's inlining
/// pass instead of `-O1`"; `cargo bench -p server --bench opt_level`).
pub const ASC_OPTIMIZE: &str = "--optimizeLevel 0 --shrinkLevel 0 --runPasses inlining";

#[cfg(test)]
mod tests {
    #[test]
    fn the_optimisation_level_is_one_of_the_flags() {
        assert!(super::ASC_FLAGS.contains(super::ASC_OPTIMIZE));
        assert!(!super::ASC_FLAGS.contains("--optimize "));
    }
}
