//! Checks that a compiled module honours the function ABI before it is stored or
//! run: it must be valid WebAssembly, export `handle` as `(i32) -> i32` (an
//! AssemblyScript `(input: string) => string`), export the AssemblyScript
//! runtime entry points the host needs to pass strings in and out (`__new`,
//! `__pin`, `__unpin`) and its 32-bit `memory`, and import nothing but the host
//! functions in [`HOST_IMPORTS`]. Error messages are addressed to the
//! function's author and say what to write instead.

use std::fmt;

use wasmparser::types::{CoreTypeId, EntityType, TypesRef};
use wasmparser::{CompositeInnerType, ValType, Validator};

pub use crate::runtime::imports::{HOST_IMPORTS, HostImport};
use ValType::I32;

/// Exports the host relies on, besides `handle` and `memory`.
const RUNTIME_EXPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("__new", &[I32, I32], &[I32]),
    ("__pin", &[I32], &[I32]),
    ("__unpin", &[I32], &[]),
];

const HANDLE_HINT: &str = "write `export function handle(input: string): string`";

/// What [`validate_module`] learnt about an accepted module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The host functions the module imports (a subset of [`HOST_IMPORTS`]).
    pub imports: Vec<&'static HostImport>,
    /// Names of all exports, in module order.
    pub exports: Vec<String>,
    /// Initial size of the exported memory, in 64 KiB pages.
    pub memory_initial_pages: u64,
    /// Maximum size of the exported memory, in 64 KiB pages, if bounded.
    pub memory_maximum_pages: Option<u64>,
}

/// Why a module does not honour the function ABI. The Display text is meant for
/// the function's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiViolation {
    #[error("the compiled module is {bytes} bytes; the limit is {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    #[error("the compiled module is not valid WebAssembly: {0}")]
    InvalidWasm(String),
    #[error("the module must export a function `handle`: {HANDLE_HINT}")]
    MissingHandle,
    #[error("the export `handle` is a {kind}, not a function: {HANDLE_HINT}")]
    HandleNotAFunction { kind: &'static str },
    #[error(
        "`handle` must take a string and return a string (wasm signature (i32) -> i32), \
         but it has wasm signature {found}: {HANDLE_HINT}"
    )]
    HandleSignature { found: String },
    #[error(
        "the module must export the AssemblyScript runtime function `{name}` with signature {expected} \
         (the platform compiles with --exportRuntime; do not define or export your own `{name}`)"
    )]
    MissingRuntimeExport {
        name: &'static str,
        expected: String,
    },
    #[error(
        "the module must export its memory as `memory` (do not rename or hide the AssemblyScript memory)"
    )]
    MissingMemory,
    #[error("the exported memory `memory` must be a 32-bit, non-shared memory")]
    UnsupportedMemory,
    #[error(
        "import `{name}` is not provided by the platform (allowed: {})",
        allowed_list()
    )]
    DisallowedImport { name: String },
    #[error(
        "import `{name}` has signature {found}, but the platform provides it as {expected}; \
         do not redeclare it with @external"
    )]
    ImportSignature {
        name: String,
        found: String,
        expected: String,
    },
}

fn allowed_list() -> String {
    HOST_IMPORTS
        .iter()
        .map(HostImport::qualified_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Validates `wasm` and checks it against the function ABI.
pub fn validate_module(wasm: &[u8]) -> Result<ModuleInfo, AbiViolation> {
    if wasm.len() > super::MAX_MODULE_BYTES {
        return Err(AbiViolation::TooLarge {
            bytes: wasm.len(),
            limit: super::MAX_MODULE_BYTES,
        });
    }
    let mut validator = Validator::new();
    let types = validator
        .validate_all(wasm)
        .map_err(|e| AbiViolation::InvalidWasm(e.to_string()))?;
    let types = types.as_ref();
    let (Some(imports), Some(exports)) = (types.core_imports(), types.core_exports()) else {
        return Err(AbiViolation::InvalidWasm(
            "expected a core module, found a component".into(),
        ));
    };
    let exports: Vec<(&str, EntityType)> = exports.collect();
    let export = |name: &str| exports.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);

    // handle
    match export("handle") {
        None => return Err(AbiViolation::MissingHandle),
        Some(EntityType::Func(id) | EntityType::FuncExact(id)) => {
            let found = signature(types, id);
            if !found.matches(&[I32], &[I32]) {
                return Err(AbiViolation::HandleSignature {
                    found: found.to_string(),
                });
            }
        }
        Some(other) => {
            return Err(AbiViolation::HandleNotAFunction {
                kind: kind_name(&other),
            });
        }
    }

    // runtime exports
    for &(name, params, results) in RUNTIME_EXPORTS {
        let ok = match export(name) {
            Some(EntityType::Func(id) | EntityType::FuncExact(id)) => {
                signature(types, id).matches(params, results)
            }
            _ => false,
        };
        if !ok {
            return Err(AbiViolation::MissingRuntimeExport {
                name,
                expected: Signature::Func {
                    params: params.to_vec(),
                    results: results.to_vec(),
                }
                .to_string(),
            });
        }
    }

    // memory
    let memory = match export("memory") {
        Some(EntityType::Memory(memory)) => memory,
        _ => return Err(AbiViolation::MissingMemory),
    };
    if memory.memory64 || memory.shared {
        return Err(AbiViolation::UnsupportedMemory);
    }

    // imports
    let mut used = Vec::new();
    for (module, name, ty) in imports {
        let qualified = format!("{module}.{name}");
        let Some(allowed) = HOST_IMPORTS
            .iter()
            .find(|a| a.module == module && a.name == name)
        else {
            return Err(AbiViolation::DisallowedImport { name: qualified });
        };
        let found = match ty {
            EntityType::Func(id) | EntityType::FuncExact(id) => signature(types, id),
            other => Signature::Other(kind_name(&other)),
        };
        if !found.matches(allowed.params, allowed.results) {
            return Err(AbiViolation::ImportSignature {
                name: qualified,
                found: found.to_string(),
                expected: Signature::Func {
                    params: allowed.params.to_vec(),
                    results: allowed.results.to_vec(),
                }
                .to_string(),
            });
        }
        if !used.contains(&allowed) {
            used.push(allowed);
        }
    }

    Ok(ModuleInfo {
        imports: used,
        exports: exports.iter().map(|(n, _)| (*n).to_owned()).collect(),
        memory_initial_pages: memory.initial,
        memory_maximum_pages: memory.maximum,
    })
}

/// The type of a function (or a description of a non-function entity).
enum Signature {
    Func {
        params: Vec<ValType>,
        results: Vec<ValType>,
    },
    Other(&'static str),
}

impl Signature {
    fn matches(&self, params: &[ValType], results: &[ValType]) -> bool {
        matches!(self, Signature::Func { params: p, results: r } if p == params && r == results)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(types: &[ValType]) -> String {
            types
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
        match self {
            Signature::Func { params, results } => match results.as_slice() {
                [] => write!(f, "({}) -> ()", list(params)),
                [one] => write!(f, "({}) -> {one}", list(params)),
                many => write!(f, "({}) -> ({})", list(params), list(many)),
            },
            Signature::Other(kind) => write!(f, "a {kind}"),
        }
    }
}

fn signature(types: TypesRef<'_>, id: CoreTypeId) -> Signature {
    match types.get(id).map(|sub| &sub.composite_type.inner) {
        Some(CompositeInnerType::Func(func)) => Signature::Func {
            params: func.params().to_vec(),
            results: func.results().to_vec(),
        },
        _ => Signature::Other("non-function type"),
    }
}

fn kind_name(ty: &EntityType) -> &'static str {
    match ty {
        EntityType::Func(_) | EntityType::FuncExact(_) => "function",
        EntityType::Table(_) => "table",
        EntityType::Memory(_) => "memory",
        EntityType::Global(_) => "global",
        EntityType::Tag(_) => "tag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::asc::testing::{ADD, config};
    use crate::compile::asc::{AscCompiler, CompileError};

    fn compiler() -> AscCompiler {
        AscCompiler::new(config())
    }

    /// Compiles several sources with one process (compiles are ~1 s each).
    async fn compile_all(sources: &[&str]) -> Vec<Result<Vec<u8>, CompileError>> {
        let compiler = compiler();
        let mut out = Vec::new();
        for source in sources {
            out.push(compiler.compile(source).await);
        }
        out
    }

    #[tokio::test]
    async fn abi_checks_on_real_modules() {
        let sources = [
            // 0: the example function
            ADD,
            // 1: no handle
            "export function run(input: string): string { return input; }",
            // 2: wrong handle signature
            "export function handle(a: i32, b: i32): i32 { return a + b; }",
            // 3: disallowed import
            r#"@external("env", "fetch") declare function fetch(): i32;
export function handle(input: string): string { return fetch().toString(); }"#,
            // 4: every allowed import
            r#"export function handle(input: string): string {
  console.log("in: " + input);
  console.debug("d"); console.info("i"); console.warn("w"); console.error("e");
  console.assert(input.length > 0, "empty input");
  console.time("t"); console.timeLog("t"); console.timeEnd("t");
  trace("t", 1, 2.0);
  return Math.random().toString() + Date.now().toString();
}"#,
            // 5: an allowed import redeclared with another signature
            r#"@external("env", "seed") declare function seed(): i32;
export function handle(input: string): string { return seed().toString(); }"#,
            // 6: handle is not a function
            "export const handle: i32 = 42;",
        ];
        let results = compile_all(&sources).await;
        let wasm = |i: usize| match &results[i] {
            Ok(wasm) => wasm.clone(),
            Err(e) => panic!("source {i} failed to compile: {e}"),
        };

        let info = validate_module(&wasm(0)).expect("example is valid");
        assert_eq!(info.imports, vec![&HOST_IMPORTS[0]]);
        for name in [
            "handle",
            "__new",
            "__pin",
            "__unpin",
            "__collect",
            "__rtti_base",
            "memory",
        ] {
            assert!(
                info.exports.iter().any(|e| e == name),
                "missing export {name}"
            );
        }
        assert!(info.memory_initial_pages >= 1);

        let err = validate_module(&wasm(1)).unwrap_err();
        assert_eq!(err, AbiViolation::MissingHandle);
        assert_eq!(
            err.to_string(),
            "the module must export a function `handle`: write `export function handle(input: string): string`"
        );

        let err = validate_module(&wasm(2)).unwrap_err();
        assert_eq!(
            err,
            AbiViolation::HandleSignature {
                found: "(i32, i32) -> i32".into()
            }
        );
        let message = err.to_string();
        assert!(message.contains("(i32, i32) -> i32"), "{message}");
        assert!(
            message.contains("export function handle(input: string): string"),
            "{message}"
        );

        let err = validate_module(&wasm(3)).unwrap_err();
        assert_eq!(
            err,
            AbiViolation::DisallowedImport {
                name: "env.fetch".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "import `env.fetch` is not provided by the platform \
             (allowed: env.abort, env.trace, env.seed, env.Date.now, env.console.log, \
             env.console.debug, env.console.info, env.console.warn, env.console.error, \
             env.console.assert, env.console.time, env.console.timeLog, env.console.timeEnd)"
        );

        let info = validate_module(&wasm(4)).expect("allowed imports are accepted");
        let mut names: Vec<String> = info.imports.iter().map(|i| i.qualified_name()).collect();
        names.sort();
        let mut all: Vec<String> = HOST_IMPORTS
            .iter()
            .map(HostImport::qualified_name)
            .collect();
        all.sort();
        assert_eq!(
            names, all,
            "the test source should exercise every allowed import"
        );

        let err = validate_module(&wasm(5)).unwrap_err();
        assert_eq!(
            err,
            AbiViolation::ImportSignature {
                name: "env.seed".into(),
                found: "() -> i32".into(),
                expected: "() -> f64".into()
            }
        );

        let err = validate_module(&wasm(6)).unwrap_err();
        assert_eq!(err, AbiViolation::HandleNotAFunction { kind: "global" });
    }

    #[test]
    fn rejects_garbage() {
        let err = validate_module(b"not wasm").unwrap_err();
        assert!(matches!(err, AbiViolation::InvalidWasm(_)), "{err:?}");
    }

    #[test]
    fn rejects_module_without_runtime() {
        // (module (func (export "handle") (param i32) (result i32) local.get 0))
        let wasm = [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
            0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type section: (i32) -> i32
            0x03, 0x02, 0x01, 0x00, // function section
            0x07, 0x0a, 0x01, 0x06, b'h', b'a', b'n', b'd', b'l', b'e', 0x00, 0x00, // export
            0x0a, 0x06, 0x01, 0x04, 0x00, 0x20, 0x00, 0x0b, // code
        ];
        let err = validate_module(&wasm).unwrap_err();
        assert_eq!(
            err,
            AbiViolation::MissingRuntimeExport {
                name: "__new",
                expected: "(i32, i32) -> i32".into()
            }
        );
    }
}
