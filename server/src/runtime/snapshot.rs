//! Wizer-style pre-initialisation of AssemblyScript modules.
//!
//! Why: AssemblyScript runs its top-level code in the module's start function
//! on every instantiation. For json-as modules that code initialises the GC
//! and TLSF allocator and allocates (and zero-fills) a 1 MiB scratch arena plus
//! a dozen arrays — it dominated instantiation. Since the start function is
//! deterministic as long as it calls no import, we run it once, then rewrite
//! the module so that the resulting memory and globals are its *initial*
//! state: the memory becomes static data segments (which wasmtime maps
//! copy-on-write), the globals get constant initialisers, and the start
//! function is removed. Each execution still gets a fresh instance; it just
//! starts from the already-initialised image.
//!
//! The rewrite is conservative: anything the snapshot could not capture
//! (imported memories/tables/globals, passive data segments, table
//! mutations, reference-typed globals, a start function that calls an
//! import such as `Math.random` or `Date.now`, a start function that traps)
//! makes [`preinitialize`] decline, and the caller uses the original module.

use std::ops::Range;

use wasm_encoder::{
    ConstExpr, DataCountSection, DataSection, ExportKind, ExportSection, GlobalSection, GlobalType,
    Ieee32, Ieee64, MemorySection, MemoryType, RawSection, SectionId,
};
use wasmparser::{ExternalKind, Operator, Parser, Payload, TypeRef, ValType};
use wasmtime::{Engine, Linker, Module, Store, Val};

use super::engine::deadline_ticks;
use super::limits::{ExecutionLimits, Limiter, WASM_PAGE_BYTES};
use super::pool::HOST_STACK_HEADROOM;

const EXPORT_PREFIX: &str = "__projectnil_snapshot_";
/// Zero runs shorter than this stay inside a data segment; a segment costs
/// a few bytes of header, so splitting on tiny gaps is not worth it.
const MERGE_GAP: usize = 32;
/// A memory this fragmented is not worth turning into segments.
const MAX_SEGMENTS: usize = 20_000;

/// Facts about a module that the runtime needs with or without a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ModuleFacts {
    /// End of the highest active data segment: where static data stops.
    /// AssemblyScript strings at or above it are never static.
    pub(crate) static_data_end: u32,
}

/// Why a module was not pre-initialised (logged, never shown to users).
pub(crate) type Declined = String;

struct Plan {
    globals: Vec<ValType>,
    memory: wasmparser::MemoryType,
    has_data_section: bool,
}

/// Static facts from the original module. Malformed input yields defaults;
/// compiling it reports the real problem.
pub(crate) fn module_facts(wasm: &[u8]) -> ModuleFacts {
    let mut facts = ModuleFacts::default();
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::DataSection(reader)) = payload else {
            continue;
        };
        for data in reader.into_iter().flatten() {
            if let wasmparser::DataKind::Active { offset_expr, .. } = data.kind {
                let mut ops = offset_expr.get_operators_reader();
                if let Ok(Operator::I32Const { value }) = ops.read() {
                    let end = (value as u32).saturating_add(data.data.len() as u32);
                    facts.static_data_end = facts.static_data_end.max(end);
                }
            }
        }
    }
    facts
}

/// Run the start function once and return an equivalent module without one.
pub(crate) fn preinitialize(
    engine: &Engine,
    limits: &ExecutionLimits,
    wasm: &[u8],
) -> Result<Vec<u8>, Declined> {
    let plan = analyse(wasm)?;
    let instrumented = instrument(wasm, &plan)?;
    let (memory, globals) = run_start(engine, limits, &instrumented, plan.globals.len())?;
    rewrite(wasm, &plan, &memory, &globals)
}

fn err(e: impl std::fmt::Display) -> Declined {
    e.to_string()
}

fn analyse(wasm: &[u8]) -> Result<Plan, Declined> {
    let mut globals = Vec::new();
    let mut memories = Vec::new();
    let mut has_start = false;
    let mut has_data_section = false;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(err)? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(err)?;
                    if !matches!(import.ty, TypeRef::Func(_)) {
                        return Err(format!(
                            "imports a non-function `{}.{}`",
                            import.module, import.name
                        ));
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    memories.push(memory.map_err(err)?);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global.map_err(err)?;
                    match global.ty.content_type {
                        ValType::I32
                        | ValType::I64
                        | ValType::F32
                        | ValType::F64
                        | ValType::V128 => globals.push(global.ty.content_type),
                        ValType::Ref(_) => return Err("has a reference-typed global".into()),
                    }
                    if global.ty.shared {
                        return Err("has a shared global".into());
                    }
                }
            }
            Payload::StartSection { .. } => has_start = true,
            Payload::DataSection(reader) => {
                has_data_section = true;
                for data in reader {
                    if let wasmparser::DataKind::Passive = data.map_err(err)?.kind {
                        return Err("has passive data segments".into());
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    if export.map_err(err)?.name.starts_with(EXPORT_PREFIX) {
                        return Err("already uses the snapshot export names".into());
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader().map_err(err)?;
                while !ops.eof() {
                    // Table and passive-segment state is not captured by
                    // the snapshot, so code that could change it is out.
                    match ops.read().map_err(err)? {
                        Operator::TableSet { .. }
                        | Operator::TableGrow { .. }
                        | Operator::TableFill { .. }
                        | Operator::TableCopy { .. }
                        | Operator::TableInit { .. }
                        | Operator::ElemDrop { .. }
                        | Operator::MemoryInit { .. }
                        | Operator::DataDrop { .. } => {
                            return Err("uses table or passive-segment instructions".into());
                        }
                        _ => {}
                    }
                }
            }
            Payload::ComponentSection { .. } | Payload::ModuleSection { .. } => {
                return Err("is a component".into());
            }
            _ => {}
        }
    }
    if !has_start {
        return Err("has no start function".into());
    }
    let [memory] = memories[..] else {
        return Err("does not define exactly one memory".into());
    };
    if memory.memory64 || memory.shared || memory.page_size_log2.is_some() {
        return Err("has a 64-bit, shared or custom-page-size memory".into());
    }
    Ok(Plan {
        globals,
        memory,
        has_data_section,
    })
}

/// Raw bytes of a section as `(id, range)` from wasmparser.
fn raw(wasm: &[u8], section: (u8, Range<usize>)) -> RawSection<'_> {
    RawSection {
        id: section.0,
        data: &wasm[section.1],
    }
}

fn export_kind(kind: ExternalKind) -> Result<ExportKind, Declined> {
    Ok(match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        ExternalKind::FuncExact => return Err("has an exact-function export".into()),
    })
}

/// The original module plus exports of memory 0 and every global, so the
/// snapshot can read state the module keeps private.
fn instrument(wasm: &[u8], plan: &Plan) -> Result<Vec<u8>, Declined> {
    let mut module = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(err)?;
        if let Payload::ExportSection(reader) = &payload {
            let mut exports = ExportSection::new();
            for export in reader.clone() {
                let export = export.map_err(err)?;
                exports.export(export.name, export_kind(export.kind)?, export.index);
            }
            exports.export(&format!("{EXPORT_PREFIX}memory"), ExportKind::Memory, 0);
            for index in 0..plan.globals.len() {
                let index = u32::try_from(index).map_err(err)?;
                exports.export(
                    &format!("{EXPORT_PREFIX}global{index}"),
                    ExportKind::Global,
                    index,
                );
            }
            module.section(&exports);
        } else if let Some(section) = payload.as_section() {
            module.section(&raw(wasm, section));
        }
    }
    Ok(module.finish())
}

/// Instantiate the instrumented module (which runs its start function) with
/// every import trapping, and capture memory and globals afterwards.
///
/// The start function runs on its own thread with a stack sized for
/// `max_stack_bytes`, so deep recursion in top-level code traps cleanly
/// whatever thread `prepare` was called on.
fn run_start(
    engine: &Engine,
    limits: &ExecutionLimits,
    instrumented: &[u8],
    global_count: usize,
) -> Result<(Vec<u8>, Vec<Val>), Declined> {
    let module = Module::new(engine, instrumented).map_err(|e| format!("{e:#}"))?;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("wasm-preinit".into())
            .stack_size(limits.max_stack_bytes + HOST_STACK_HEADROOM)
            .spawn_scoped(scope, || capture(engine, limits, &module, global_count))
            .map_err(err)?
            .join()
            .map_err(|_| "pre-initialisation panicked".to_owned())?
    })
}

fn capture(
    engine: &Engine,
    limits: &ExecutionLimits,
    module: &Module,
    global_count: usize,
) -> Result<(Vec<u8>, Vec<Val>), Declined> {
    let mut store = Store::new(engine, Limiter::new(limits));
    store.limiter(|limiter| limiter);
    store.set_epoch_deadline(deadline_ticks(limits.timeout));
    store.epoch_deadline_trap();
    let mut linker = Linker::new(engine);
    linker
        .define_unknown_imports_as_traps(module)
        .map_err(|e| format!("{e:#}"))?;
    let instance = linker
        .instantiate(&mut store, module)
        .map_err(|e| format!("start function failed or called an import: {e:#}"))?;
    let memory = instance
        .get_memory(&mut store, &format!("{EXPORT_PREFIX}memory"))
        .ok_or("memory export missing")?
        .data(&store)
        .to_vec();
    let mut globals = Vec::with_capacity(global_count);
    for index in 0..global_count {
        let global = instance
            .get_global(&mut store, &format!("{EXPORT_PREFIX}global{index}"))
            .ok_or("global export missing")?;
        globals.push(global.get(&mut store));
    }
    Ok((memory, globals))
}

fn const_expr(value: &Val) -> Result<ConstExpr, Declined> {
    Ok(match value {
        Val::I32(v) => ConstExpr::i32_const(*v),
        Val::I64(v) => ConstExpr::i64_const(*v),
        Val::F32(bits) => ConstExpr::f32_const(Ieee32::new(*bits)),
        Val::F64(bits) => ConstExpr::f64_const(Ieee64::new(*bits)),
        Val::V128(v) => ConstExpr::v128_const(v.as_u128() as i128),
        _ => return Err("global holds a reference".into()),
    })
}

/// Non-zero stretches of memory, merging across short zero gaps.
fn data_runs(memory: &[u8]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut at = 0;
    while let Some(offset) = memory[at..].iter().position(|&b| b != 0) {
        let start = at + offset;
        let mut end = start;
        loop {
            let Some(zero) = memory[end..].iter().position(|&b| b == 0) else {
                end = memory.len();
                break;
            };
            let zero_at = end + zero;
            let gap = memory[zero_at..]
                .iter()
                .take(MERGE_GAP)
                .take_while(|&&b| b == 0)
                .count();
            end = zero_at;
            if gap >= MERGE_GAP || zero_at + gap == memory.len() {
                break;
            }
            end = zero_at + gap;
        }
        runs.push(start..end);
        at = end;
    }
    runs
}

/// The original module with the snapshot as its initial state and no start
/// function.
fn rewrite(wasm: &[u8], plan: &Plan, memory: &[u8], globals: &[Val]) -> Result<Vec<u8>, Declined> {
    let runs = data_runs(memory);
    if runs.len() > MAX_SEGMENTS {
        return Err(format!("memory too fragmented ({} segments)", runs.len()));
    }
    let mut data = DataSection::new();
    for run in &runs {
        let offset = i32::try_from(run.start).map_err(err)?;
        data.active(
            0,
            &ConstExpr::i32_const(offset),
            memory[run.clone()].iter().copied(),
        );
    }
    let pages = (memory.len() as u64) / WASM_PAGE_BYTES;

    let mut module = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(err)?;
        match &payload {
            Payload::MemorySection(_) => {
                let mut section = MemorySection::new();
                section.memory(MemoryType {
                    minimum: pages.max(plan.memory.initial),
                    maximum: plan.memory.maximum,
                    memory64: false,
                    shared: false,
                    page_size_log2: None,
                });
                module.section(&section);
            }
            Payload::GlobalSection(reader) => {
                let mut section = GlobalSection::new();
                for (global, value) in reader.clone().into_iter().zip(globals) {
                    let global = global.map_err(err)?;
                    let ty = GlobalType {
                        val_type: encoder_val_type(global.ty.content_type)?,
                        mutable: global.ty.mutable,
                        shared: false,
                    };
                    section.global(ty, &const_expr(value)?);
                }
                module.section(&section);
            }
            Payload::StartSection { .. } => {}
            Payload::DataCountSection { .. } => {
                module.section(&DataCountSection { count: data.len() });
            }
            Payload::DataSection(_) => {
                module.section(&data);
            }
            Payload::CustomSection(reader) if reader.name() == "name" => {
                // Data segment names would point at segments that no longer
                // exist; names only serve backtraces, which are off.
            }
            other => {
                if let Some(section) = other.as_section() {
                    let id = section.0;
                    module.section(&raw(wasm, section));
                    // A module without data segments gets its data section
                    // right after the code section, where the format wants it
                    // (such a module has no data count section to update).
                    if id == SectionId::Code as u8 && !plan.has_data_section {
                        module.section(&data);
                    }
                }
            }
        }
    }
    Ok(module.finish())
}

fn encoder_val_type(ty: ValType) -> Result<wasm_encoder::ValType, Declined> {
    Ok(match ty {
        ValType::I32 => wasm_encoder::ValType::I32,
        ValType::I64 => wasm_encoder::ValType::I64,
        ValType::F32 => wasm_encoder::ValType::F32,
        ValType::F64 => wasm_encoder::ValType::F64,
        ValType::V128 => wasm_encoder::ValType::V128,
        ValType::Ref(_) => return Err("has a reference-typed global".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_runs_merge_short_gaps_and_split_long_ones() {
        let mut memory = vec![0u8; 1000];
        memory[10] = 1;
        memory[20] = 2; // gap of 9 zeros: merged
        memory[500] = 3; // long gap: new run
        memory[999] = 4;
        assert_eq!(data_runs(&memory), vec![10..21, 500..501, 999..1000]);
        assert!(data_runs(&[0u8; 64]).is_empty());
        assert_eq!(data_runs(&[1u8; 4]), vec![0..4]);
    }
}
