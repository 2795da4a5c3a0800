//! What the benchmarks share: compiling a fixture with the AssemblyScript CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `tests/fixtures/functions/{name}.ts` (`add` is the example
/// function) with `flags`, as `index.ts` in a scratch directory.
pub fn compile_fixture(name: &str, flags: &str) -> Vec<u8> {
    let server = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = if name == "add" {
        server.join("compiler/example.ts")
    } else {
        server.join(format!("../tests/fixtures/functions/{name}.ts"))
    };
    let modules = server.join("compiler/node_modules");
    let work = std::env::temp_dir().join(format!(
        "projectnil-bench-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&work).expect("scratch dir");
    std::fs::copy(&source, work.join("index.ts"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
    std::os::unix::fs::symlink(&modules, work.join("node_modules")).expect("link node_modules");
    let status = Command::new(PathBuf::from(&modules).join(".bin/asc"))
        .arg("index.ts")
        .args(flags.split_whitespace())
        .args(["-o", "out.wasm"])
        .current_dir(&work)
        .status()
        .expect("run asc (npm ci --prefix server/compiler)");
    assert!(status.success(), "asc failed on {name}.ts");
    let wasm = std::fs::read(work.join("out.wasm")).expect("read out.wasm");
    let _ = std::fs::remove_dir_all(&work);
    wasm
}
