//! The JSON Schema of `commands/*.toml`, generated from the types the loader
//! deserializes (`load::RawFile` and the action model), for editors: taplo /
//! Even Better TOML read it through the `#:schema ./schema.json` line at the
//! top of each catalog file. Pure.
//!
//! The schema says what deserializes; the loader checks more (known roles and
//! targets, templates naming defined arguments, previews that only read), and
//! reports that as `file:line` problems in `opsbot check`.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The committed schema's path, relative to the crate.
pub const SCHEMA_FILE: &str = "commands/schema.json";

/// The schema of one catalog file, pretty-printed with a final newline (the
/// text of [`SCHEMA_FILE`]). Draft 7: what taplo's validator reads.
pub fn schema_json() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<super::load::RawFile>();
    schema.insert("title".into(), "opsbot catalog file (commands/*.toml)".into());
    // Serializing a `Schema` (a JSON value) cannot fail.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// A duration as the catalog writes it: `30s`, `5m`, `1h30m`, `250ms`, `1d`, `1w`.
pub(super) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: 30s, 5m, 1h, 1d, 1w, 250ms, or a sum such as 1h30m.",
            "pattern": "^\\s*([0-9]+(ms|s|m|h|d|w))+\\s*$"
        })
    }
}

/// `values` of a `[profile.<name>]`: strings, or tables of them (dotted names).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only its schema is used: the loader reads a `toml::Table`.
pub(super) enum ProfileValue {
    /// A file or directory on the profile's host.
    Text(String),
    /// `logs = { app = "…" }` is the value `logs.app`.
    Table(BTreeMap<String, ProfileValue>),
}

/// An argument's `default`: a string, or a number or switch written bare.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only its schema is used: the loader reads a `toml::Value`.
pub(super) enum ArgDefault {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The kinds of a command argument.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used: the loader reads the name.
pub(super) enum ArgKindName {
    /// One of `values`.
    Enum,
    /// A whole number in `min..max`.
    Int,
    /// `30s`, `5m`, `1h`, `1d`.
    Duration,
    /// Free text (at most `max_len`, 200 by default), optionally matching `regex`.
    String,
    /// 1 to 64 of `A-Z a-z 0-9 _ . : -`: job ids, keys, correlation ids.
    Id,
    /// One public IP address outside `protected`.
    Ip,
    /// A switch (`flag = true`): `--errors`.
    Bool,
    /// Comma-separated values of the kind `of`.
    List,
}
