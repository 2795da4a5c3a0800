//! The "Writing functions" examples of the README, parsed so tests can compile
//! and run them: every ```ts block followed by a line
//! `**Input** `{…}` **Output** `{…}`` (or `**Error** `…``).

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Example {
    pub title: String,
    pub source: String,
    pub input: Value,
    pub expected: Expected,
}

#[derive(Debug, Clone)]
pub enum Expected {
    Output(Value),
    Error(String),
}

pub fn examples() -> Vec<Example> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("## Writing functions")
        .nth(1)
        .expect("a Writing functions section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut examples = Vec::new();
    let mut title = String::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix("### ") {
            title = heading.to_string();
        }
        if line.trim() != "```ts" {
            continue;
        }
        let source: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let Some(spec) = lines.by_ref().find(|l| l.starts_with("**Input**")) else {
            break;
        };
        let parts: Vec<&str> = spec.split('`').collect();
        let input: Value = serde_json::from_str(parts[1]).expect("example input is JSON");
        let expected = if spec.contains("**Output**") {
            Expected::Output(serde_json::from_str(parts[3]).expect("example output is JSON"))
        } else {
            Expected::Error(parts[3].to_string())
        };
        examples.push(Example {
            title: title.clone(),
            source: source.join("\n") + "\n",
            input,
            expected,
        });
    }
    examples
}
