//! The host side of a store: per-execution state and the imports an
//! AssemblyScript module may use.
//!
//! Only what the AssemblyScript standard library routes through imports is
//! provided: `env.abort`, `env.trace`, `env.seed` (`Math.random`),
//! `env.Date.now`, and the `env.console.*` family. Nothing else — no WASI, no
//! filesystem, network or environment access. Output of `trace` and `console`
//! is captured, bounded, into the execution's logs:
//!
//! | call                | captured line                       |
//! |---------------------|-------------------------------------|
//! | `console.log(m)`    | `m`                                 |
//! | `console.info(m)`   | `[info] m` (likewise debug/warn/error) |
//! | `trace(m, n, a..)`  | `trace: m a0, a1` (as AssemblyScript's JS loader prints it) |
//! | `console.assert`    | `[assert] Assertion failed: m`      |
//! | `console.time*`     | `label: 1.234ms`                    |

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Engine, Extern, Linker};

use super::abi;
use super::limits::{ExecutionLimits, Limiter};

/// Longest abort message or file name kept, in UTF-16 code units.
const MAX_ABORT_TEXT_UNITS: usize = 1024;
/// `console.time` labels alive at once; more are ignored.
const MAX_TIMERS: usize = 64;

/// State owned by one store, i.e. one execution.
pub(crate) struct HostState {
    pub(crate) limiter: Limiter,
    pub(crate) logs: LogBuffer,
    pub(crate) abort: Option<AbortInfo>,
    /// Why the epoch callback interrupted the call, if it did.
    pub(crate) stopped: Option<Stop>,
    /// Whether wasm is running on a fiber (an `_async` call), so the epoch
    /// callback may yield; a synchronous call must not.
    pub(crate) on_fiber: bool,
    timers: HashMap<String, Instant>,
}

/// Why an execution was interrupted from outside its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its thread used up the CPU time budget.
    Timeout,
    /// Its [`CancellationToken`](tokio_util::sync::CancellationToken) fired.
    Cancelled,
}

impl HostState {
    pub(crate) fn new(limits: &ExecutionLimits) -> Self {
        Self {
            limiter: Limiter::new(limits),
            logs: LogBuffer::new(limits.max_log_bytes, limits.max_log_lines),
            abort: None,
            stopped: None,
            on_fiber: true,
            timers: HashMap::new(),
        }
    }
}

/// What `env.abort` was called with, decoded while memory was at hand.
#[derive(Debug, Clone)]
pub(crate) struct AbortInfo {
    pub(crate) message: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) file_ptr: u32,
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// Error value the abort import unwinds with; the details are in
/// [`HostState::abort`].
#[derive(Debug)]
pub(crate) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("module called env.abort")
    }
}

impl std::error::Error for Aborted {}

/// Captured log lines, bounded in count and total size so a chatty (or
/// malicious) function cannot exhaust host memory.
pub(crate) struct LogBuffer {
    lines: Vec<String>,
    bytes: usize,
    max_bytes: usize,
    max_lines: usize,
    truncated: bool,
}

impl LogBuffer {
    fn new(max_bytes: usize, max_lines: usize) -> Self {
        Self {
            lines: Vec::new(),
            bytes: 0,
            max_bytes,
            max_lines,
            truncated: false,
        }
    }

    /// Bytes a new line may still use.
    fn remaining(&self) -> usize {
        self.max_bytes.saturating_sub(self.bytes)
    }

    pub(crate) fn push(&mut self, mut line: String) {
        if self.truncated {
            return;
        }
        if self.lines.len() >= self.max_lines || self.remaining() == 0 {
            self.truncate();
            return;
        }
        if line.len() > self.remaining() {
            let mut cut = self.remaining();
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            self.bytes += line.len();
            self.lines.push(line);
            self.truncate();
            return;
        }
        self.bytes += line.len();
        self.lines.push(line);
    }

    fn truncate(&mut self) {
        self.truncated = true;
        self.lines.push(format!(
            "[logs truncated: limit of {} lines or {} bytes reached]",
            self.max_lines, self.max_bytes
        ));
    }

    pub(crate) fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
}

fn memory<'a>(caller: &'a mut Caller<'_, HostState>) -> Option<&'a [u8]> {
    let memory = caller.get_export("memory").and_then(Extern::into_memory)?;
    Some(memory.data(caller))
}

/// Decode a string argument for diagnostics; garbage pointers give `None`.
fn read_text(caller: &mut Caller<'_, HostState>, ptr: i32, max_units: usize) -> Option<String> {
    let data = memory(caller)?;
    let bytes = abi::string_bytes(data, ptr as u32).ok()?;
    Some(abi::decode_lossy(bytes, max_units))
}

/// Log a string argument, reading no more of it than the log budget allows.
fn log_text(caller: &mut Caller<'_, HostState>, prefix: &str, ptr: i32) {
    // A UTF-16 unit never becomes more than 3 UTF-8 bytes and never fewer
    // than 1, so the budget in bytes bounds the units worth decoding.
    let budget = caller.data().logs.remaining();
    let text = read_text(caller, ptr, budget).unwrap_or_else(|| "(invalid string)".into());
    caller.data_mut().logs.push(format!("{prefix}{text}"));
}

/// Numbers formatted the way JavaScript prints them for the common cases.
fn js_number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else if value == 0.0 {
        "0".into()
    } else {
        value.to_string()
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

/// Fresh entropy per call from std's randomly keyed SipHash; AssemblyScript
/// only uses it to seed its own PRNG, so no extra crate is needed.
fn random_seed() -> f64 {
    let bits = RandomState::new().hash_one(now_ms().to_bits());
    // Any finite, non-zero value works; keep it an exact integer.
    ((bits >> 11) | 1) as f64
}

fn timer_elapsed(caller: &mut Caller<'_, HostState>, ptr: i32, end: bool) {
    let label = read_text(caller, ptr, 256).unwrap_or_default();
    let state = caller.data_mut();
    let started = if end {
        state.timers.remove(&label)
    } else {
        state.timers.get(&label).copied()
    };
    let line = match started {
        Some(at) => format!("{label}: {:.3}ms", at.elapsed().as_secs_f64() * 1000.0),
        None => format!("[warn] Timer '{label}' does not exist"),
    };
    state.logs.push(line);
}

/// The linker every execution instantiates against.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);

    linker.func_wrap(
        "env",
        "abort",
        |mut caller: Caller<'_, HostState>,
         message: i32,
         file: i32,
         line: i32,
         column: i32|
         -> wasmtime::Result<()> {
            let message_text = read_text(&mut caller, message, MAX_ABORT_TEXT_UNITS);
            let file_text = read_text(&mut caller, file, MAX_ABORT_TEXT_UNITS);
            caller.data_mut().abort = Some(AbortInfo {
                message: message_text,
                file: file_text,
                file_ptr: file as u32,
                line: line as u32,
                column: column as u32,
            });
            Err(wasmtime::Error::new(Aborted))
        },
    )?;

    linker.func_wrap(
        "env",
        "trace",
        |mut caller: Caller<'_, HostState>,
         message: i32,
         count: i32,
         a0: f64,
         a1: f64,
         a2: f64,
         a3: f64,
         a4: f64| {
            let budget = caller.data().logs.remaining();
            let text = read_text(&mut caller, message, budget).unwrap_or_default();
            let count = count.clamp(0, 5) as usize;
            let args: Vec<String> = [a0, a1, a2, a3, a4][..count]
                .iter()
                .map(|v| js_number(*v))
                .collect();
            let line = if args.is_empty() {
                format!("trace: {text}")
            } else {
                format!("trace: {text} {}", args.join(", "))
            };
            caller.data_mut().logs.push(line);
        },
    )?;

    linker.func_wrap("env", "seed", random_seed)?;
    linker.func_wrap("env", "Date.now", now_ms)?;

    for (name, prefix) in [
        ("console.log", ""),
        ("console.debug", "[debug] "),
        ("console.info", "[info] "),
        ("console.warn", "[warn] "),
        ("console.error", "[error] "),
    ] {
        linker.func_wrap(
            "env",
            name,
            move |mut caller: Caller<'_, HostState>, message: i32| {
                log_text(&mut caller, prefix, message);
            },
        )?;
    }

    linker.func_wrap(
        "env",
        "console.assert",
        |mut caller: Caller<'_, HostState>, condition: i32, message: i32| {
            if condition == 0 {
                log_text(&mut caller, "[assert] Assertion failed: ", message);
            }
        },
    )?;

    linker.func_wrap(
        "env",
        "console.time",
        |mut caller: Caller<'_, HostState>, label: i32| {
            let label = read_text(&mut caller, label, 256).unwrap_or_default();
            let timers = &mut caller.data_mut().timers;
            if timers.len() < MAX_TIMERS {
                timers.insert(label, Instant::now());
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "console.timeLog",
        |mut caller: Caller<'_, HostState>, label: i32| timer_elapsed(&mut caller, label, false),
    )?;
    linker.func_wrap(
        "env",
        "console.timeEnd",
        |mut caller: Caller<'_, HostState>, label: i32| timer_elapsed(&mut caller, label, true),
    )?;

    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buffer_is_bounded_by_bytes_and_lines() {
        let mut logs = LogBuffer::new(10, 100);
        logs.push("12345".into());
        logs.push("héllo".into());
        logs.push("dropped".into());
        let lines = logs.take();
        assert_eq!(lines[0], "12345");
        assert_eq!(lines[1], "héll", "cut at a char boundary within budget");
        assert!(lines[2].starts_with("[logs truncated"));
        assert_eq!(lines.len(), 3);

        let mut logs = LogBuffer::new(1000, 2);
        for i in 0..5 {
            logs.push(i.to_string());
        }
        let lines = logs.take();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("[logs truncated"));
    }

    /// The linker implements exactly the list the ABI check allows, with the
    /// same signatures.
    #[test]
    fn the_linker_defines_exactly_the_host_imports() {
        use wasmtime::{Store, ValType};
        let engine = Engine::default();
        let linker = linker(&engine).unwrap();
        let mut store = Store::new(&engine, HostState::new(&ExecutionLimits::default()));
        let wasm_type = |t: &wasmparser::ValType| match t {
            wasmparser::ValType::I32 => "i32",
            wasmparser::ValType::F64 => "f64",
            other => panic!("unexpected {other:?}"),
        };
        let linked_type = |t: ValType| match t {
            ValType::I32 => "i32",
            ValType::F64 => "f64",
            other => panic!("unexpected {other:?}"),
        };
        let items: Vec<(String, Extern)> = linker
            .iter(&mut store)
            .map(|(module, name, item)| (format!("{module}.{name}"), item))
            .collect();
        let mut defined: Vec<(String, Vec<&str>, Vec<&str>)> = items
            .into_iter()
            .map(|(name, item)| {
                let Extern::Func(func) = item else {
                    panic!("{name} is not a function")
                };
                let ty = func.ty(&store);
                (
                    name,
                    ty.params().map(linked_type).collect(),
                    ty.results().map(linked_type).collect(),
                )
            })
            .collect();
        let mut wanted: Vec<(String, Vec<&str>, Vec<&str>)> = super::super::imports::HOST_IMPORTS
            .iter()
            .map(|host| {
                (
                    host.qualified_name(),
                    host.params.iter().map(wasm_type).collect(),
                    host.results.iter().map(wasm_type).collect(),
                )
            })
            .collect();
        defined.sort();
        wanted.sort();
        assert_eq!(defined, wanted);
    }

    #[test]
    fn numbers_print_like_javascript() {
        assert_eq!(js_number(42.0), "42");
        assert_eq!(js_number(1.5), "1.5");
        assert_eq!(js_number(-0.0), "0");
        assert_eq!(js_number(f64::NAN), "NaN");
        assert_eq!(js_number(f64::NEG_INFINITY), "-Infinity");
    }
}
