//! AssemblyScript sources used by the tests (`tests/fixtures/functions`).

pub fn source(name: &str) -> String {
    let path = format!(
        "{}/fixtures/functions/{name}.ts",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The contract's example: `{"a": 5, "b": 3}` → `{"sum": 8}`.
pub const ADD: &str = r#"import { JSON } from "json-as";

@json
class Input { a: i32 = 0; b: i32 = 0; }
@json
class Output { sum: i32 = 0; }

export function handle(input: string): string {
  const args = JSON.parse<Input>(input);
  const out = new Output();
  out.sum = args.a + args.b;
  return JSON.stringify(out);
}
"#;

/// Returns its input unchanged.
pub const ECHO: &str = r#"export function handle(input: string): string {
  return input;
}
"#;
