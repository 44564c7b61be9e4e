//! The JSON Schema of `commands/*.toml` (issue #17): the committed file is
//! what the catalog's types generate (`UPDATE_SCHEMA=1 cargo test --test it
//! catalog_schema` writes it), every shipped file names it and validates
//! against it, and it refuses what the loader cannot deserialize while
//! leaving optional what serde leaves optional.

use opsbot::catalog::{schema_json, SCHEMA_FILE};
use serde_json::{json, Value};
use std::path::Path;

const DIRECTIVE: &str = "#:schema ./schema.json";

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&schema_json()).expect("the schema is JSON");
    jsonschema::draft7::new(&schema).expect("the schema is a valid draft 7 schema")
}

/// A catalog text as the JSON a TOML-aware editor validates.
fn as_json(text: &str) -> Value {
    let v: toml::Value = toml::from_str(text).expect("TOML");
    serde_json::to_value(v).expect("TOML values are JSON values")
}

/// The schema's complaints about `text`, as `path: message`.
fn errors(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    v.iter_errors(&as_json(text))
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_committed_schema_is_what_the_catalog_types_generate() {
    let generated = schema_json();
    if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(SCHEMA_FILE, &generated).expect("write the schema");
    }
    let committed = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    assert!(
        committed == generated,
        "{SCHEMA_FILE} is out of date with the catalog's types: run \
         `UPDATE_SCHEMA=1 cargo test --test it catalog_schema` and commit it"
    );
}

#[test]
fn every_shipped_catalog_file_names_the_schema_and_validates_against_it() {
    let v = validator();
    let mut files: Vec<_> = std::fs::read_dir("commands")
        .expect("commands/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        assert_eq!(
            text.lines().next(),
            Some(DIRECTIVE),
            "{}: the first line points editors at the schema",
            f.display()
        );
        let found = errors(&v, &text);
        assert!(found.is_empty(), "{}:\n{}", f.display(), found.join("\n"));
    }
    assert!(Path::new(SCHEMA_FILE).exists());
}

#[test]
fn optional_fields_are_optional_and_unknown_ones_refused() {
    let v = validator();
    // Only what serde requires: summary, risk, roles, action; kind, url.
    let minimal = r#"
[target.api]
kind = "http"
url = "http://x"

[command.queue."queue stats"]
summary = "s"
risk = "read"
roles = ["anyone"]
action = { http = { target = "api", path = "/stats" } }
"#;
    assert_eq!(errors(&v, minimal), Vec::<String>::new());
    let cases = [
        ("a misspelt field", minimal.replace("summary =", "sumary =")),
        ("no summary", minimal.replace("summary = \"s\"\n", "")),
        ("an unknown risk", minimal.replace("\"read\"", "\"harmless\"")),
        ("an unknown action", minimal.replace("{ http =", "{ shell =")),
        (
            "an unknown target kind",
            minimal.replace("\"http\"\nurl", "\"ftp\"\nurl"),
        ),
        (
            "a bad duration",
            minimal.replace(
                "action =",
                "approve = { roles = [\"sre\"], ttl = \"soon\" }\naction =",
            ),
        ),
        (
            "an unknown argument kind",
            minimal.replace("risk =", "args = { q = { kind = \"queue\" } }\nrisk ="),
        ),
    ];
    for (what, text) in cases {
        assert!(!errors(&v, &text).is_empty(), "{what} passed the schema:\n{text}");
    }
}

#[test]
fn variants_with_their_own_approval_are_in_the_schema() {
    let v = validator();
    let text = r#"
[command.cap."rollback"]
summary = "s"
args = { emergency = { kind = "bool", flag = true }, disable = { kind = "list", of = "id", flag = true } }
risk = "destructive"
roles = ["oncall"]
action = { variants = { by = "emergency", choices = [
  { value = "true", args = ["disable"], approve = { roles = ["sre"], break_glass = true }, action = { http = { method = "POST", target = "api", path = "/r" } } },
  { value = "false", approve = { roles = ["sre"] }, action = { seq = [{ http = { target = "api", path = "/r" } }] } },
] } }
"#;
    assert_eq!(errors(&v, text), Vec::<String>::new());
    let wrong = text.replace("args = [\"disable\"]", "args = \"disable\"");
    assert!(!errors(&v, &wrong).is_empty());
    let schema: Value = serde_json::from_str(&schema_json()).unwrap();
    assert_eq!(
        schema["$schema"],
        json!("http://json-schema.org/draft-07/schema#")
    );
}
