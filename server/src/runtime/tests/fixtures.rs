//! Compiles fixture functions (`tests/fixtures/functions/*.ts`) with the real
//! AssemblyScript compiler, the way the platform does. Each source compiles
//! once: the wasm is cached under the temp dir, keyed by a hash of the
//! source, the flags and the compiler's package manifests.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

/// The platform's own compiler flags.
fn asc_flags() -> Vec<&'static str> {
    crate::compile::ASC_FLAGS.split_whitespace().collect()
}

fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_dir() -> PathBuf {
    server_dir().join("../tests/fixtures/functions")
}

fn node_modules() -> PathBuf {
    server_dir().join("compiler/node_modules")
}

/// One slot per fixture; the first test to ask compiles, the others wait.
type Slot = Arc<OnceLock<Vec<u8>>>;

static COMPILED: LazyLock<Mutex<HashMap<String, Slot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The compiled wasm of fixture `name` (without `.ts`).
pub(crate) fn wasm(name: &str) -> Vec<u8> {
    let slot = COMPILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(name.to_owned())
        .or_default()
        .clone();
    slot.get_or_init(|| compile(name)).clone()
}

fn compile(name: &str) -> Vec<u8> {
    let source = if name == "add" {
        crate::compile::EXAMPLE_SOURCE.to_owned()
    } else {
        let path = fixtures_dir().join(format!("{name}.ts"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    };
    let modules = node_modules();
    let mut hasher = DefaultHasher::new();
    source.hash(&mut hasher);
    asc_flags().hash(&mut hasher);
    for manifest in ["assemblyscript/package.json", "json-as/package.json"] {
        std::fs::read(modules.join(manifest))
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    let hash = format!("{:016x}", hasher.finish());

    let cache_dir = std::env::temp_dir().join("projectnil-asc-fixtures");
    let cached = cache_dir.join(format!("{name}-{hash}.wasm"));
    if let Ok(bytes) = std::fs::read(&cached) {
        return bytes;
    }
    // Test runners that use a process per test (nextest) would otherwise
    // compile the same fixture several times at once.
    std::fs::create_dir_all(&cache_dir).expect("create fixture cache dir");
    let lock = std::fs::File::create(cache_dir.join(format!("{name}-{hash}.lock")))
        .expect("create fixture lock");
    lock.lock().expect("lock fixture");
    if let Ok(bytes) = std::fs::read(&cached) {
        return bytes;
    }

    // Compile as `index.ts` in a scratch directory, as the platform does, so
    // abort locations read `index.ts:line:col`.
    let work = cache_dir.join(format!("{name}-{hash}-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("create fixture work dir");
    std::fs::write(work.join("index.ts"), &source).expect("write fixture source");
    link_node_modules(&modules, &work.join("node_modules"));
    let output = Command::new("node")
        .arg(modules.join("assemblyscript/bin/asc.js"))
        .arg("index.ts")
        .args(asc_flags())
        .args(["-o", "out.wasm"])
        .current_dir(&work)
        .output()
        .expect("run node (is Node.js installed?)");
    assert!(
        output.status.success(),
        "asc failed for fixture {name}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(work.join("out.wasm")).expect("read compiled fixture");
    // Rename is atomic, so parallel test processes never see half a file.
    let partial = work.join("done.wasm");
    std::fs::write(&partial, &bytes).expect("write fixture cache");
    std::fs::rename(&partial, &cached).expect("publish fixture cache");
    let _ = std::fs::remove_dir_all(&work);
    bytes
}

fn link_node_modules(target: &Path, link: &Path) {
    if link.exists() {
        return;
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, link).expect("symlink node_modules");
    #[cfg(not(unix))]
    panic!(
        "fixture compilation needs a Unix symlink to {}",
        target.display()
    );
}
