//! The host functions of the function ABI: the one list of what a module may
//! import, used by the compiler's ABI check (`compile/validate.rs`), by the
//! runtime when it loads a module (`module.rs`) and checked against the
//! linker that implements them (`host.rs`).

use wasmparser::ValType;

/// A host function a module may import. The runtime's linker provides exactly
/// these (a test checks it), and the compiler's ABI check rejects a module
/// that imports anything else before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostImport {
    /// Import module name (always `env` for AssemblyScript).
    pub module: &'static str,
    /// Import field name, as AssemblyScript emits it (note the dots).
    pub name: &'static str,
    pub params: &'static [ValType],
    pub results: &'static [ValType],
    /// What the host function is for and how to implement it.
    pub doc: &'static str,
}

impl HostImport {
    /// `module.name`, e.g. `env.console.log`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

use ValType::{F64, I32};

/// The imports AssemblyScript 0.28 emits for the features user code may use
/// (checked by compiling each with the platform's flags); the runtime's linker
/// ([`super::host`]) defines exactly these. Other
/// standard-library imports (`performance.now` from `process.hrtime`,
/// `process.exit`, the `~lib/bindings/dom` globals) are rejected. Pointers are offsets
/// into the exported `memory`; strings are AssemblyScript `String` objects
/// (UTF-16LE, byte length in the u32 at `ptr - 4`; a null pointer is `null`).
pub const HOST_IMPORTS: &[HostImport] = &[
    HostImport {
        module: "env",
        name: "abort",
        params: &[I32, I32, I32, I32],
        results: &[],
        doc: "abort(message: string | null, fileName: string | null, line: u32, column: u32): never. \
              Called on a failed assertion, `throw`, or runtime error (out of bounds, bad JSON, ...). \
              The host must trap / stop the execution and report the message and location.",
    },
    HostImport {
        module: "env",
        name: "trace",
        params: &[I32, I32, F64, F64, F64, F64, F64],
        results: &[],
        doc: "trace(message: string, n: i32, a0..a4: f64): `trace(\"msg\", n, ...)`; \
              log the message followed by the first `n` (0..=5) of the f64 arguments.",
    },
    HostImport {
        module: "env",
        name: "seed",
        params: &[],
        results: &[F64],
        doc: "seed(): f64. Called once, lazily, to seed `Math.random()`; return a random f64.",
    },
    HostImport {
        module: "env",
        name: "Date.now",
        params: &[],
        results: &[F64],
        doc: "Date.now(): f64. Milliseconds since the Unix epoch (used by `Date.now()` and `new Date()`).",
    },
    HostImport {
        module: "env",
        name: "console.log",
        params: &[I32],
        results: &[],
        doc: "console.log(message: string). `console.log(s)` (a single string); log the message.",
    },
    HostImport {
        module: "env",
        name: "console.debug",
        params: &[I32],
        results: &[],
        doc: "console.debug(message: string). Like console.log, debug level.",
    },
    HostImport {
        module: "env",
        name: "console.info",
        params: &[I32],
        results: &[],
        doc: "console.info(message: string). Like console.log, info level.",
    },
    HostImport {
        module: "env",
        name: "console.warn",
        params: &[I32],
        results: &[],
        doc: "console.warn(message: string). Like console.log, warning level.",
    },
    HostImport {
        module: "env",
        name: "console.error",
        params: &[I32],
        results: &[],
        doc: "console.error(message: string). Like console.log, error level.",
    },
    HostImport {
        module: "env",
        name: "console.assert",
        params: &[I32, I32],
        results: &[],
        doc: "console.assert(condition: bool, message: string). Log the message when `condition` is 0; \
              does not abort (unlike `assert()`, which calls `abort`).",
    },
    HostImport {
        module: "env",
        name: "console.time",
        params: &[I32],
        results: &[],
        doc: "console.time(label: string). Start a timer named `label` (`\"default\"` when omitted).",
    },
    HostImport {
        module: "env",
        name: "console.timeLog",
        params: &[I32],
        results: &[],
        doc: "console.timeLog(label: string). Log the time elapsed on timer `label`.",
    },
    HostImport {
        module: "env",
        name: "console.timeEnd",
        params: &[I32],
        results: &[],
        doc: "console.timeEnd(label: string). Log the time elapsed on timer `label` and stop it.",
    },
];
