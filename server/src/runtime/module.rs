//! Turning wasm bytes into a [`PreparedModule`]: pre-initialise, compile,
//! check the function ABI, and link once (`InstancePre`).

use std::time::Instant;

use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, ModuleExport};

use super::error::{RuntimeError, describe};
use super::host::HostState;
use super::imports::HOST_IMPORTS;
use super::limits::ExecutionLimits;
use super::snapshot::{self, ModuleFacts};

/// Export indices resolved once per module, so executions skip name lookups.
pub(crate) struct AbiExports {
    pub(crate) memory: ModuleExport,
    pub(crate) new: ModuleExport,
    pub(crate) pin: ModuleExport,
    pub(crate) handle: ModuleExport,
}

/// A compiled, linked module ready to be instantiated per execution.
pub(crate) struct PreparedModule {
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) exports: AbiExports,
    pub(crate) facts: ModuleFacts,
    /// Estimated memory held: the compiled image plus the wasm it came from
    /// (which backs the copy-on-write memory image).
    pub(crate) size_bytes: usize,
    /// Whether the start function was snapshotted away.
    pub(crate) preinitialized: bool,
}

/// The engines a runtime compiles for; see [`super::engine`].
pub(crate) struct Engines {
    pub(crate) execution: Engine,
    pub(crate) init: Engine,
}

/// Blocking: pre-initialises (when `preinitialize`), compiles and links `wasm`.
pub(crate) fn prepare(
    engines: &Engines,
    linker: &Linker<HostState>,
    limits: &ExecutionLimits,
    wasm: &[u8],
    preinitialize: bool,
) -> Result<PreparedModule, RuntimeError> {
    let started = Instant::now();
    let facts = snapshot::module_facts(wasm);
    let attempt = if preinitialize {
        snapshot::preinitialize(&engines.init, limits, wasm)
    } else {
        Err("disabled".to_owned())
    };
    let snapshotted = match attempt {
        Ok(bytes) => Some(bytes),
        Err(reason) => {
            tracing::debug!(%reason, "module not pre-initialised; its start function runs per execution");
            None
        }
    };
    let (module, preinitialized, final_len) = match snapshotted
        .as_deref()
        .map(|bytes| (Module::new(&engines.execution, bytes), bytes.len()))
    {
        Some((Ok(module), len)) => (module, true, len),
        other => {
            if let Some((Err(e), _)) = other {
                tracing::warn!(error = %describe(&e), "pre-initialised module failed to compile; using the original");
            }
            let module = Module::new(&engines.execution, wasm)
                .map_err(|e| RuntimeError::Compile(describe(&e)))?;
            (module, false, wasm.len())
        }
    };

    check_imports(&module)?;
    let exports = abi_exports(&module)?;
    let pre = linker
        .instantiate_pre(&module)
        .map_err(|e| RuntimeError::InvalidModule(describe(&e)))?;
    let image = module.image_range();
    let size_bytes = (image.end as usize).saturating_sub(image.start as usize) + final_len;
    tracing::debug!(
        preinitialized,
        size_bytes,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "module prepared"
    );
    Ok(PreparedModule {
        pre,
        exports,
        facts,
        size_bytes,
        preinitialized,
    })
}

fn check_imports(module: &Module) -> Result<(), RuntimeError> {
    let unsupported: Vec<String> = module
        .imports()
        .filter(|import| {
            !HOST_IMPORTS
                .iter()
                .any(|host| host.module == import.module() && host.name == import.name())
                || !matches!(import.ty(), ExternType::Func(_))
        })
        .map(|import| format!("`{}.{}`", import.module(), import.name()))
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(RuntimeError::InvalidModule(format!(
        "it imports {}, which the platform does not provide (available: {})",
        unsupported.join(", "),
        HOST_IMPORTS
            .iter()
            .map(|host| host.qualified_name())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn abi_exports(module: &Module) -> Result<AbiExports, RuntimeError> {
    let func = |name: &str, params: usize, results: usize| -> Result<ModuleExport, RuntimeError> {
        let hint = if name == "handle" {
            " (functions must `export function handle(input: string): string`)"
        } else {
            " (compile with --exportRuntime)"
        };
        let Some(ExternType::Func(ty)) = module.get_export(name) else {
            return Err(RuntimeError::InvalidModule(format!(
                "missing exported function `{name}`{hint}"
            )));
        };
        let all_i32 = ty.params().all(|p| p.is_i32()) && ty.results().all(|r| r.is_i32());
        if ty.params().len() != params || ty.results().len() != results || !all_i32 {
            return Err(RuntimeError::InvalidModule(format!(
                "exported function `{name}` has an unexpected signature{hint}"
            )));
        }
        module
            .get_export_index(name)
            .ok_or_else(|| RuntimeError::InvalidModule(format!("missing export `{name}`")))
    };
    let memory = match module.get_export("memory") {
        Some(ExternType::Memory(_)) => module.get_export_index("memory"),
        _ => None,
    }
    .ok_or_else(|| RuntimeError::InvalidModule("missing exported memory `memory`".into()))?;
    Ok(AbiExports {
        memory,
        new: func("__new", 2, 1)?,
        pin: func("__pin", 1, 1)?,
        handle: func("handle", 1, 1)?,
    })
}
