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
pub const ASC_FLAGS: &str = "--exportRuntime --runtime incremental --optimizeLevel 1 --shrinkLevel 0 \
     --transform json-as/transform";

/// Binaryen's optimisation level within [`ASC_FLAGS`]. Binaryen's passes are
/// most of a compile: `-O1` takes about a third of `-O3`'s time in them, and
/// its modules run as fast as `-O3`'s once Cranelift has compiled them
/// (BENCHMARKS.md, "Compile"; `cargo bench -p server --bench opt_level`).
pub const ASC_OPTIMIZE: &str = "--optimizeLevel 1 --shrinkLevel 0";

#[cfg(test)]
mod tests {
    #[test]
    fn the_optimisation_level_is_one_of_the_flags() {
        assert!(super::ASC_FLAGS.contains(super::ASC_OPTIMIZE));
        assert!(!super::ASC_FLAGS.contains("--optimize "));
    }
}
