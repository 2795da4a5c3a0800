//! AssemblyScript sources used by the tests (`tests/fixtures/functions`).

pub fn source(name: &str) -> String {
    if name == "add" {
        return ADD.to_owned();
    }
    let path = format!(
        "{}/fixtures/functions/{name}.ts",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The contract's example: `{"a": 5, "b": 3}` → `{"sum": 8}` (kept once,
/// beside the compiler, which warms up on it).
pub const ADD: &str = server::compile::EXAMPLE_SOURCE;

/// Returns its input unchanged.
pub const ECHO: &str = r#"export function handle(input: string): string {
  return input;
}
"#;
