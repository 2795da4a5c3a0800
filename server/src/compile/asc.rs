//! Driver for the warm AssemblyScript compiler. This module owns the long-lived
//! `node compiler.mjs` child process (see `server/compiler/compiler.mjs`): it
//! starts it lazily, speaks its JSON-lines protocol one request at a time,
//! forwards its stderr to `tracing`, kills and restarts it when a compile
//! overruns its time budget, and restarts it when it has died. It turns the
//! outcome into a [`CompileError`] that separates the user's diagnostics from
//! timeouts and from infrastructure failures an operator has to fix.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// How long the process may take to load the compiler and print its ready line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the child's stderr kept to explain a crash.
const STDERR_TAIL_LINES: usize = 40;
const SCRIPT: &str = "compiler.mjs";
const INSTALL_HINT: &str = "run `npm ci --prefix server/compiler`";

/// Where to find Node.js and `server/compiler`, and the budget for one compile.
#[derive(Debug, Clone)]
pub struct AscConfig {
    /// The `node` binary (a bare name is looked up on `PATH`).
    pub node: PathBuf,
    /// Directory holding `compiler.mjs` and its `node_modules`.
    pub compiler_dir: PathBuf,
    /// Maximum time for one compile; the process is killed and restarted after it.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The source does not compile; the text is the compiler's diagnostics
    /// (`ERROR TS2304: ...`, the source line, `at index.ts:3:10`).
    #[error("{0}")]
    Diagnostics(String),
    #[error("compilation timed out after {} ms", after.as_millis())]
    Timeout { after: Duration },
    #[error(
        "could not start Node.js (`{}`): {error}; install Node.js 20 or newer or configure the path to `node`",
        node.display()
    )]
    NodeNotFound { node: PathBuf, error: io::Error },
    #[error("the AssemblyScript compiler is not installed in `{}`: {INSTALL_HINT}", dir.display())]
    NotInstalled { dir: PathBuf },
    #[error("the AssemblyScript compiler process failed to start: {0}")]
    Startup(String),
    #[error(
        "the AssemblyScript compiler process exited unexpectedly ({status}); it is restarted on the next compile{}",
        tail_suffix(stderr_tail)
    )]
    Crashed { status: String, stderr_tail: String },
    #[error(
        "unexpected reply from the AssemblyScript compiler process: {0}; the process is restarted on the next compile"
    )]
    Protocol(String),
    #[error("I/O error talking to the AssemblyScript compiler process: {0}")]
    Io(#[from] io::Error),
}

impl CompileError {
    /// True when the error is about the user's source (diagnostics, timeout)
    /// rather than the compiler's installation or process.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            CompileError::Diagnostics(_) | CompileError::Timeout { .. }
        )
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last compiler stderr:\n{tail}")
    }
}

/// A warm AssemblyScript compiler: one Node.js process, used by one compile at a time.
pub struct AscCompiler {
    config: AscConfig,
    state: Mutex<State>,
    /// Version reported by the most recently started process.
    version: StdMutex<Option<String>>,
}

struct State {
    process: Option<Process>,
    next_id: u64,
}

impl AscCompiler {
    /// Creates the driver; the process is started by the first call to
    /// [`compile`](Self::compile) or [`compiler_version`](Self::compiler_version).
    pub fn new(config: AscConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                process: None,
                next_id: 1,
            }),
            version: StdMutex::new(None),
        }
    }

    /// `assemblyscript X; json-as Y`, as reported by the compiler process
    /// (starting it if needed). Part of the content-cache key.
    pub async fn compiler_version(&self) -> Result<String, CompileError> {
        if let Some(version) = self.cached_version() {
            return Ok(version);
        }
        let mut state = self.state.lock().await;
        self.ensure_running(&mut state).await?;
        self.cached_version().ok_or_else(|| {
            CompileError::Protocol("the ready line carried no compiler version".into())
        })
    }

    /// Compiles AssemblyScript `source` (the entry file `index.ts`) to a wasm module.
    pub async fn compile(&self, source: &str) -> Result<Vec<u8>, CompileError> {
        self.compile_with_timeout(source, self.config.timeout).await
    }

    /// Like [`compile`](Self::compile) with an explicit time budget.
    pub async fn compile_with_timeout(
        &self,
        source: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, CompileError> {
        let mut state = self.state.lock().await;
        let id = state.next_id;
        state.next_id += 1;
        let request = serde_json::to_string(&Request { id, source })
            .map_err(|e| CompileError::Protocol(e.to_string()))?;

        // A process that died while idle (or was killed, e.g. by the OOM killer)
        // is only noticed when we talk to it. Retry once on a fresh process when
        // the request never reached it or the process was killed from outside; a
        // crash of the compiler itself (exit status 1, or Node aborting when out
        // of heap) is deterministic for the source and is reported.
        let mut first_attempt = true;
        let response = loop {
            let retry_allowed = std::mem::take(&mut first_attempt);
            let process = self.ensure_running(&mut state).await?;
            if let Err(error) = process.send(&request).await {
                if retry_allowed {
                    tracing::warn!(%error, "asc.process_gone_restarting");
                    self.discard(&mut state).await;
                    continue;
                }
                return Err(self.reap(&mut state, Some(error)).await.0);
            }
            let io_error = match tokio::time::timeout(timeout, process.receive(id)).await {
                Ok(Ok(response)) => break response,
                Ok(Err(Failure::Eof)) => None,
                Ok(Err(Failure::Io(error))) => Some(error),
                Ok(Err(Failure::Protocol(message))) => {
                    self.discard(&mut state).await;
                    return Err(CompileError::Protocol(message));
                }
                Err(_elapsed) => {
                    tracing::warn!(
                        timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        "asc.compile_timeout_restarting"
                    );
                    self.discard(&mut state).await;
                    if let Err(error) = self.ensure_running(&mut state).await {
                        tracing::error!(%error, "asc.restart_failed");
                    }
                    return Err(CompileError::Timeout { after: timeout });
                }
            };
            let (error, killed) = self.reap(&mut state, io_error).await;
            if !(retry_allowed && killed) {
                return Err(error);
            }
            tracing::warn!(%error, "asc.process_killed_retrying");
        };

        match response {
            Response {
                ok: true,
                wasm: Some(wasm),
                ..
            } => BASE64.decode(wasm).map_err(|e| {
                CompileError::Protocol(format!("the module is not valid base64: {e}"))
            }),
            Response {
                ok: false, error, ..
            } => Err(CompileError::Diagnostics(
                error
                    .filter(|e| !e.trim().is_empty())
                    .unwrap_or_else(|| "compilation failed without diagnostics".into()),
            )),
            Response {
                ok: true,
                wasm: None,
                ..
            } => Err(CompileError::Protocol(
                "a successful reply carried no module".into(),
            )),
        }
    }

    #[cfg(test)]
    async fn pid(&self) -> Option<u32> {
        self.state
            .lock()
            .await
            .process
            .as_ref()
            .and_then(|p| p.child.id())
    }

    fn cached_version(&self) -> Option<String> {
        self.version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the running process, starting a new one if there is none or it has exited.
    async fn ensure_running<'s>(
        &self,
        state: &'s mut State,
    ) -> Result<&'s mut Process, CompileError> {
        let alive = match state.process.as_mut() {
            Some(process) => match process.child.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    tracing::warn!(%status, "asc.process_exited_restarting");
                    false
                }
                Err(error) => {
                    tracing::warn!(%error, "asc.process_state_unknown_restarting");
                    false
                }
            },
            None => false,
        };
        if !alive {
            self.discard(state).await;
            let (process, version) = self.spawn().await?;
            let mut cached = self.version.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(previous) = cached.as_ref().filter(|previous| **previous != version) {
                tracing::warn!(%previous, current = %version, hint = "restart the server so content-cache keys match", "asc.compiler_version_changed");
            }
            *cached = Some(version);
            drop(cached);
            state.process = Some(process);
        }
        match state.process.as_mut() {
            Some(process) => Ok(process),
            None => Err(CompileError::Startup("no compiler process".into())),
        }
    }

    /// Kills and forgets the current process, if any.
    async fn discard(&self, state: &mut State) {
        if let Some(mut process) = state.process.take() {
            process.kill().await;
        }
    }

    /// Forgets a process that stopped answering and builds the error for it;
    /// the flag says whether it was killed from outside (rather than crashing).
    async fn reap(&self, state: &mut State, io_error: Option<io::Error>) -> (CompileError, bool) {
        let Some(mut process) = state.process.take() else {
            return (
                CompileError::Crashed {
                    status: "no process".into(),
                    stderr_tail: String::new(),
                },
                false,
            );
        };
        let (status, killed) =
            match tokio::time::timeout(Duration::from_secs(2), process.child.wait()).await {
                Ok(Ok(status)) => (status.to_string(), killed_from_outside(status)),
                _ => {
                    process.kill().await;
                    let status = match io_error {
                        Some(error) => format!("I/O error: {error}"),
                        None => "stdout closed".into(),
                    };
                    (status, false)
                }
            };
        let stderr_tail = process.stderr_tail().await;
        tracing::error!(%status, stderr = %stderr_tail, "asc.process_died");
        (
            CompileError::Crashed {
                status,
                stderr_tail,
            },
            killed,
        )
    }

    async fn spawn(&self) -> Result<(Process, String), CompileError> {
        let dir = &self.config.compiler_dir;
        let script = dir.join(SCRIPT);
        if !script.is_file() {
            return Err(CompileError::Startup(format!(
                "`{}` does not exist; PROJECTNIL_COMPILER_DIR must point at the server/compiler directory of a ProjectNIL checkout",
                script.display()
            )));
        }
        for package in ["assemblyscript", "json-as"] {
            if !dir
                .join("node_modules")
                .join(package)
                .join("package.json")
                .is_file()
            {
                return Err(CompileError::NotInstalled { dir: dir.clone() });
            }
        }

        let mut child = Command::new(&self.config.node)
            .arg(&script)
            .args(super::ASC_FLAGS.split_whitespace())
            .env(
                "PROJECTNIL_MAX_MODULE_BYTES",
                super::MAX_MODULE_BYTES.to_string(),
            )
            .env(
                "PROJECTNIL_MAX_DIAGNOSTICS_CHARS",
                super::MAX_DIAGNOSTICS_CHARS.to_string(),
            )
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| CompileError::NodeNotFound {
                node: self.config.node.clone(),
                error,
            })?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(CompileError::Startup(
                "the child's stdio pipes are missing".into(),
            ));
        };

        let tail = Arc::new(StdMutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let stderr_task = tokio::spawn(forward_stderr(stderr, pid, Arc::clone(&tail)));
        let mut process = Process {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            stderr_task,
            tail,
        };

        let version = match tokio::time::timeout(STARTUP_TIMEOUT, process.ready()).await {
            Ok(Ok(version)) => version,
            Ok(Err(message)) => {
                process.kill().await;
                let tail = process.stderr_tail().await;
                return Err(CompileError::Startup(format!(
                    "{message}{}",
                    tail_suffix(&tail)
                )));
            }
            Err(_) => {
                process.kill().await;
                return Err(CompileError::Startup(format!(
                    "no ready line within {} s",
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
        };
        tracing::info!(pid, compiler = %version, "asc.process_started");
        Ok((process, version))
    }
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr_task: JoinHandle<()>,
    tail: Arc<StdMutex<VecDeque<String>>>,
}

enum Failure {
    Eof,
    Io(io::Error),
    Protocol(String),
}

#[derive(serde::Serialize)]
struct Request<'a> {
    id: u64,
    source: &'a str,
}

#[derive(Deserialize)]
struct Response {
    id: Option<u64>,
    ok: bool,
    wasm: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Ready {
    ready: bool,
    #[serde(rename = "compilerVersion")]
    compiler_version: Option<String>,
    error: Option<String>,
}

impl Process {
    /// Waits for `{"ready":true,...}` and returns the compiler version.
    async fn ready(&mut self) -> Result<String, String> {
        loop {
            let line = match self.stdout.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => return Err("the process exited before it was ready".into()),
                Err(error) => return Err(format!("reading its stdout failed: {error}")),
            };
            let Ok(ready) = serde_json::from_str::<Ready>(&line) else {
                tracing::debug!(line, "asc.stray_stdout");
                continue;
            };
            return match (ready.ready, ready.compiler_version) {
                (true, Some(version)) => Ok(version),
                (true, None) => Err("the ready line carried no compiler version".into()),
                (false, _) => Err(ready
                    .error
                    .unwrap_or_else(|| "it reported it is not ready".into())),
            };
        }
    }

    async fn send(&mut self, request: &str) -> io::Result<()> {
        self.stdin.write_all(request.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await
    }

    /// Reads replies until the one for `id`. Replies to older requests (whose
    /// caller gave up, e.g. a cancelled future) are skipped.
    async fn receive(&mut self, id: u64) -> Result<Response, Failure> {
        loop {
            let line = match self.stdout.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => return Err(Failure::Eof),
                Err(error) => return Err(Failure::Io(error)),
            };
            let Ok(response) = serde_json::from_str::<Response>(&line) else {
                tracing::debug!(line, "asc.stray_stdout");
                continue;
            };
            match response.id {
                Some(got) if got == id => return Ok(response),
                Some(got) if got < id => tracing::debug!(got, id, "asc.skipping_stale_reply"),
                got => {
                    return Err(Failure::Protocol(format!(
                        "expected the reply to request {id}, got {got:?}"
                    )));
                }
            }
        }
    }

    async fn kill(&mut self) {
        if let Err(error) = self.child.start_kill() {
            tracing::debug!(%error, "asc.kill_failed");
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("asc.process_did_not_exit_after_kill");
        }
    }

    /// The last lines the process wrote to stderr (waits briefly for them to drain).
    async fn stderr_tail(&mut self) -> String {
        // The forwarding task ends at EOF, i.e. once the process has exited.
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.stderr_task).await;
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Whether the process was stopped from outside (the OOM killer, an
/// operator): SIGKILL, SIGTERM, SIGINT or SIGHUP. A signal the process raised
/// itself, such as Node's SIGABRT when it runs out of heap, is a crash on the
/// source and would only happen again.
#[cfg(unix)]
fn killed_from_outside(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    const SIGHUP: i32 = 1;
    const SIGINT: i32 = 2;
    const SIGKILL: i32 = 9;
    const SIGTERM: i32 = 15;
    status
        .signal()
        .is_some_and(|signal| matches!(signal, SIGHUP | SIGINT | SIGKILL | SIGTERM))
}

#[cfg(not(unix))]
fn killed_from_outside(_status: std::process::ExitStatus) -> bool {
    false
}

async fn forward_stderr(
    stderr: tokio::process::ChildStderr,
    pid: Option<u32>,
    tail: Arc<StdMutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(pid, "asc: {line}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

#[cfg(test)]
/// Shared by the compiler's and the ABI check's tests.
pub(crate) mod testing {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::AscConfig;

    /// `PROJECTNIL_COMPILER_DIR`, else the checkout's the tests run in (found
    /// as the binary finds it: a test binary may come from another checkout
    /// sharing the target dir).
    pub fn compiler_dir() -> PathBuf {
        std::env::var_os("PROJECTNIL_COMPILER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                crate::config::COMPILER_DIR
                    .locate_here()
                    .unwrap_or_else(|not_found| panic!("{not_found}"))
            })
    }

    pub fn config() -> AscConfig {
        AscConfig {
            node: PathBuf::from("node"),
            compiler_dir: compiler_dir(),
            timeout: Duration::from_secs(120),
        }
    }

    /// The contract's example (what the compiler warms up on).
    pub const ADD: &str = crate::compile::EXAMPLE_SOURCE;
}

#[cfg(test)]
mod tests {
    use super::testing::{ADD, compiler_dir, config};
    use super::*;
    use crate::compile::validate::validate_module;

    /// Different JSON classes than ADD, so stale transform state would show.
    const CONCAT: &str = r#"
import { JSON } from "json-as";
type Name = string;
@json
class Item { name: Name = ""; price: f64 = 0; }
@json
class Input { items: Item[] = []; prefix: string = ""; }
@json
class Output { names: string[] = []; total: f64 = 0; }
export function handle(input: string): string {
  const args = JSON.parse<Input>(input);
  const out = new Output();
  for (let i = 0; i < args.items.length; i++) {
    out.names.push(args.prefix + args.items[i].name);
    out.total += args.items[i].price;
  }
  return JSON.stringify(out);
}
"#;

    fn assert_valid(wasm: &[u8]) {
        if let Err(violation) = validate_module(wasm) {
            panic!("module rejected: {violation}");
        }
    }

    #[tokio::test]
    async fn compiles_valid_source_and_reports_version() {
        let compiler = AscCompiler::new(config());
        let version = compiler.compiler_version().await.expect("compiler starts");
        assert!(version.starts_with("assemblyscript 0."), "{version}");
        assert!(version.contains("; json-as "), "{version}");
        let wasm = compiler.compile(ADD).await.expect("compiles");
        assert_eq!(&wasm[..4], b"\0asm");
        assert_valid(&wasm);
    }

    #[tokio::test]
    async fn modules_and_diagnostics_are_held_to_their_limits() {
        let compiler = AscCompiler::new(config());
        // At -O0, memory.data(n) is n bytes of static data in the module.
        let big = format!(
            "const data = memory.data({});\n\
             export function handle(input: string): string {{ return data.toString(); }}\n",
            super::super::MAX_MODULE_BYTES + 1
        );
        let error = compiler.compile(&big).await.expect_err("too large");
        let CompileError::Diagnostics(text) = &error else {
            panic!("expected diagnostics, got {error:?}")
        };
        assert!(
            text.contains(&format!(
                "the limit is {} bytes",
                super::super::MAX_MODULE_BYTES
            )) && text.contains("memory.data"),
            "{text}"
        );
        // An error per statement, each quoting its line.
        let noisy = format!(
            "export function handle(input: string): string {{\n{}  return input;\n}}\n",
            "  undefinedName;\n".repeat(5_000)
        );
        let error = compiler
            .compile(&noisy)
            .await
            .expect_err("does not compile");
        let CompileError::Diagnostics(text) = &error else {
            panic!("expected diagnostics, got {error:?}")
        };
        assert!(text.contains("TS2304"), "{}", &text[..200]);
        assert!(
            text.chars().count() < super::super::MAX_DIAGNOSTICS_CHARS + 100
                && text.ends_with("more characters of diagnostics)"),
            "{} characters, ending {:?}",
            text.chars().count(),
            &text[text.len().saturating_sub(80)..]
        );
        // The process is still there for the next compile.
        assert_valid(&compiler.compile(ADD).await.expect("compiles"));
    }

    #[tokio::test]
    async fn syntax_error_gives_clean_diagnostics() {
        let compiler = AscCompiler::new(config());
        let source =
            "export function handle(input: string): string {\n  let x = ;\n  return foo;\n}\n";
        let error = compiler
            .compile(source)
            .await
            .expect_err("does not compile");
        let CompileError::Diagnostics(text) = &error else {
            panic!("expected diagnostics, got {error:?}")
        };
        assert!(text.contains("index.ts:2:"), "{text}");
        assert!(text.contains("TS1109"), "{text}");
        assert!(!text.contains('\x1b'), "ANSI escape in {text:?}");
        assert!(
            !text.contains(" /") && !text.starts_with('/'),
            "absolute path in {text}"
        );
        assert!(
            !text.contains(compiler_dir().to_string_lossy().as_ref()),
            "{text}"
        );
        assert_eq!(error.to_string(), *text);
        assert!(error.is_user_error());

        let error = compiler
            .compile("export function handle(input: string): string {\n  return foo;\n}\n")
            .await;
        let Err(CompileError::Diagnostics(text)) = error else {
            panic!("expected diagnostics, got {error:?}")
        };
        assert!(
            text.contains("ERROR TS2304: Cannot find name 'foo'."),
            "{text}"
        );
        assert!(text.contains("at index.ts:2:10"), "{text}");
    }

    #[tokio::test]
    async fn sequential_compiles_are_independent() {
        let compiler = AscCompiler::new(config());
        let a1 = compiler.compile(ADD).await.expect("A compiles");
        let b = compiler.compile(CONCAT).await.expect("B compiles");
        let a2 = compiler.compile(ADD).await.expect("A compiles again");
        assert_valid(&a1);
        assert_valid(&b);
        assert_ne!(a1, b);
        assert_eq!(
            a1, a2,
            "A compiled after B must be identical to A compiled first"
        );
        // And the same as a fresh process would produce.
        let fresh = AscCompiler::new(config())
            .compile(CONCAT)
            .await
            .expect("B compiles");
        assert_eq!(b, fresh);
    }

    #[tokio::test]
    async fn timeout_kills_and_restarts() {
        let compiler = AscCompiler::new(config());
        compiler.compiler_version().await.expect("compiler starts");
        let before = compiler.pid().await;
        let error = compiler
            .compile_with_timeout(ADD, Duration::from_millis(1))
            .await
            .expect_err("1 ms is not enough");
        assert!(matches!(error, CompileError::Timeout { .. }), "{error:?}");
        assert_eq!(error.to_string(), "compilation timed out after 1 ms");
        assert_ne!(compiler.pid().await, before, "process was replaced");
        let wasm = compiler
            .compile(ADD)
            .await
            .expect("compiles after the restart");
        assert_valid(&wasm);
    }

    #[tokio::test]
    async fn restarts_a_killed_process() {
        let compiler = AscCompiler::new(config());
        compiler.compile(ADD).await.expect("compiles");
        let pid = compiler.pid().await.expect("running");
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let wasm = compiler
            .compile(ADD)
            .await
            .expect("compiles on a new process");
        assert_valid(&wasm);
        assert_ne!(compiler.pid().await, Some(pid));
    }

    #[tokio::test]
    async fn cancelled_compile_does_not_confuse_the_next_one() {
        let compiler = AscCompiler::new(config());
        compiler.compiler_version().await.expect("compiler starts");
        // Give up on a compile after it was sent, without the driver's timeout.
        let _ = tokio::time::timeout(Duration::from_millis(50), compiler.compile(CONCAT)).await;
        let wasm = compiler.compile(ADD).await.expect("compiles");
        let again = compiler.compile(ADD).await.expect("compiles");
        assert_eq!(
            wasm, again,
            "the reply to the abandoned request was not mistaken for this one"
        );
    }

    #[tokio::test]
    async fn infrastructure_errors_say_what_to_do() {
        let missing_node = AscCompiler::new(AscConfig {
            node: PathBuf::from("/nonexistent/node"),
            ..config()
        });
        let error = missing_node.compile(ADD).await.expect_err("no node");
        assert!(
            matches!(error, CompileError::NodeNotFound { .. }),
            "{error:?}"
        );
        assert!(!error.is_user_error());

        let empty =
            std::env::temp_dir().join(format!("projectnil-asc-test-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("temp dir");
        std::fs::copy(compiler_dir().join(SCRIPT), empty.join(SCRIPT)).expect("copy script");
        let not_installed = AscCompiler::new(AscConfig {
            compiler_dir: empty.clone(),
            ..config()
        });
        let error = not_installed
            .compiler_version()
            .await
            .expect_err("no node_modules");
        std::fs::remove_dir_all(&empty).ok();
        assert!(
            matches!(error, CompileError::NotInstalled { .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("npm ci --prefix server/compiler"),
            "{error}"
        );
    }
}
