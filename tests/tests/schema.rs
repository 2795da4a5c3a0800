//! `schema.graphql` is the SDL of the live schema, and the live schema keeps
//! every name of the binding contract (`../shared/contract/api.graphql`).

use std::collections::BTreeMap;

const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");

#[test]
fn schema_file_matches_the_live_schema() {
    let live = server::graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(SCHEMA_FILE, &live).unwrap();
    }
    let file = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    assert!(
        file == live,
        "schema.graphql differs from the live schema; regenerate it with:\n  UPDATE_SCHEMA=1 cargo nextest run -p tests -E 'test(schema_file_matches_the_live_schema)'"
    );
}

/// type name → field name → the field's declared type (with arguments).
fn fields(sdl: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut types = BTreeMap::new();
    let mut current: Option<String> = None;
    // Values of a multi-line enum may share a line.
    let mut in_enum = false;
    let mut depth = 0;
    let mut in_description = false;
    for raw in sdl.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        // Block descriptions (""" ... """) may span lines.
        if line.matches("\"\"\"").count() % 2 == 1 {
            in_description = !in_description;
            continue;
        }
        if in_description || line.starts_with('"') || line.is_empty() {
            continue;
        }
        if current.is_none() {
            for keyword in ["type ", "input ", "enum "] {
                if let Some(rest) = line.strip_prefix(keyword) {
                    let name = rest.split([' ', '{']).next().unwrap().to_string();
                    types.insert(name.clone(), BTreeMap::new());
                    // Single-line types: `type A { x: Int y: Int }`.
                    if let (Some(open), Some(close)) = (rest.find('{'), rest.rfind('}')) {
                        let body = &rest[open + 1..close];
                        let parts = if keyword == "enum " {
                            body.split_whitespace()
                                .map(|v| (v.to_string(), String::new()))
                                .collect()
                        } else {
                            single_line_fields(body)
                        };
                        for part in parts {
                            types.get_mut(&name).unwrap().insert(part.0, part.1);
                        }
                    } else if rest.contains('{') {
                        current = Some(name);
                        in_enum = keyword == "enum ";
                    }
                }
            }
            continue;
        }
        if line.starts_with('}') {
            current = None;
            depth = 0;
            continue;
        }
        if in_enum {
            if let Some(t) = &current {
                for value in line.split_whitespace() {
                    types
                        .get_mut(t)
                        .unwrap()
                        .insert(value.to_string(), String::new());
                }
            }
            continue;
        }
        if depth == 0 {
            let name = line.split(['(', ':', ' ']).next().unwrap().to_string();
            let signature = line.to_string();
            if let Some(t) = &current {
                types.get_mut(t).unwrap().insert(name, signature);
            }
        }
        depth += line.matches('(').count() as i32 - line.matches(')').count() as i32;
    }
    types
}

fn single_line_fields(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for token in body.split_whitespace() {
        if let Some(name) = token.strip_suffix(':') {
            out.push((name.to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            if last.1.is_empty() {
                last.1 = token.to_string();
            }
        } else {
            out.push((token.to_string(), String::new()));
        }
    }
    out
}

fn normalize(signature: &str) -> String {
    signature
        .split_once(':')
        .map(|(_, t)| t)
        .unwrap_or(signature)
        .replace(' ', "")
}

/// The sections of `api-additions.graphql` this schema has made live.
const BUILT_ADDITIONS: &[&str] = &["Dependable executions", "Versions and deploys", "Analytics"];

#[test]
fn live_schema_keeps_every_name_of_the_contract() {
    let contract_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/contract/api.graphql"
    );
    let Ok(contract) = std::fs::read_to_string(contract_path) else {
        eprintln!("contract not found at {contract_path}; skipping");
        return;
    };
    let wanted = fields(&contract);
    assert!(wanted.len() > 10, "parsed the contract: {wanted:?}");
    assert_live_schema_has(&wanted);
}

#[test]
fn live_schema_has_every_name_of_the_built_additions() {
    let additions_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/contract/api-additions.graphql"
    );
    let Ok(additions) = std::fs::read_to_string(additions_path) else {
        eprintln!("contract additions not found at {additions_path}; skipping");
        return;
    };
    for section in BUILT_ADDITIONS {
        let sdl = addition_section(&additions, section)
            .unwrap_or_else(|| panic!("no section {section:?} in api-additions.graphql"));
        // `extend type X { ... }` adds fields to X: parse it as `type X`.
        let sdl = sdl.replace("extend type ", "type ");
        let wanted = fields(&sdl);
        assert!(!wanted.is_empty(), "parsed nothing of {section:?}");
        assert_live_schema_has(&wanted);
    }
}

/// An argument the additions name only in a comment (it extends a field of
/// `api.graphql`), so the section parser does not see it.
#[test]
fn update_function_takes_an_expected_revision() {
    let live = fields(&server::graphql::sdl());
    let update = &live["Mutation"]["updateFunction"];
    assert!(
        update.replace(' ', "").contains("expectedRevision:Int)"),
        "{update}"
    );
}

/// The issue's `errorKind` filter of both execution lists (fields of
/// `api.graphql`, so not in the additions' text), and every error kind.
#[test]
fn execution_lists_filter_by_error_kind() {
    let sdl = server::graphql::sdl();
    let live = fields(&sdl);
    for list in [
        &live["Query"]["executions"],
        &live["Function"]["executions"],
    ] {
        assert!(
            list.replace(' ', "")
                .contains("errorKind:ExecutionErrorKind"),
            "{list}"
        );
    }
    let kinds = "TIMEOUT MEMORY_LIMIT STACK_OVERFLOW TRAP ABORT INVALID_OUTPUT OUTPUT_TOO_LARGE INTERRUPTED CANCELLED PLATFORM";
    let live_enum = sdl
        .split("enum ExecutionErrorKind {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("enum ExecutionErrorKind in the live schema");
    let live_kinds: Vec<&str> = live_enum.split_whitespace().collect();
    assert_eq!(live_kinds, kinds.split(' ').collect::<Vec<_>>());
}

/// The text of one `# --- <name> ---` section of the additions.
fn addition_section(additions: &str, name: &str) -> Option<String> {
    let mut lines = additions.lines().skip_while(|line| {
        !(line.starts_with("# ---") && line.trim_start_matches("# ---").trim().starts_with(name))
    });
    lines.next()?;
    Some(
        lines
            .take_while(|line| !line.starts_with("# ---"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn assert_live_schema_has(wanted: &BTreeMap<String, BTreeMap<String, String>>) {
    let live = fields(&server::graphql::sdl());
    for (type_name, contract_fields) in wanted {
        let live_fields = live
            .get(type_name)
            .unwrap_or_else(|| panic!("type {type_name} missing from the live schema"));
        for (field, signature) in contract_fields {
            let live_signature = live_fields
                .get(field)
                .unwrap_or_else(|| panic!("{type_name}.{field} missing from the live schema"));
            // Output types and nullability must match for plain fields.
            if !signature.contains('(')
                && !signature.is_empty()
                && !live_signature.contains('(')
                && !live_signature.is_empty()
            {
                let (c, l) = (normalize(signature), normalize(live_signature));
                let (c, l) = (
                    c.split('=').next().unwrap().to_string(),
                    l.split('=').next().unwrap().to_string(),
                );
                assert_eq!(c, l, "{type_name}.{field}");
            }
        }
    }
}
