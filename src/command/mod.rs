//! PURE: chat text → a typed request against the catalog, a built-in command,
//! or help. No I/O, no clock, no async: every function here is a plain
//! function of its inputs, and every refusal is a friendly [`UsageError`].
//!
//! Pipeline: [`tokenize`] splits the text (quotes, `--flags`), [`parse`] finds
//! the longest catalog command name that prefixes the words, picks its profile
//! (system), then types and normalizes the arguments ([`value`]). [`help`]
//! renders help from the same catalog definitions; [`suggest`] offers
//! did-you-mean corrections.

mod alerts;
mod help;
mod incident;
mod parse;
mod suggest;
mod tokenize;
mod value;

#[cfg(test)]
mod tests;

pub use alerts::Alerts;

use crate::catalog::{ArgKind, Catalog, Command};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What the current chat may see: the profiles (systems) enabled in config and
/// the profile the channel is bound to, if any.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Only commands of these profiles exist for the parser and for help.
    pub enabled_profiles: &'a [String],
    /// Picks the profile when the words exist in several enabled profiles.
    pub channel_profile: Option<&'a str>,
}

/// The outcome of parsing one chat message.
#[derive(Debug)]
pub enum Parsed<'c> {
    /// `/help …` or `/<command> help`: the text to reply with.
    Help(String),
    /// A command the bot implements itself (approvals).
    Builtin(Builtin),
    /// A catalog command with validated, normalized arguments.
    Run(Request<'c>),
}

/// Commands that are not in the catalog. Approval ids are normalized to `a<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// `/approve <id>`
    Approve { id: String },
    /// `/reject <id> [reason…]`
    Reject { id: String, reason: Option<String> },
    /// `/cancel <id>`
    Cancel { id: String },
    /// `/approvals`: list pending approvals.
    Approvals,
    /// `/incident <action> …`
    Incident(crate::incident::Command),
    /// `/incidents`: the open ones.
    Incidents,
    /// `/oncall …`
    Oncall(crate::incident::Oncall),
    /// `/alerts …`
    Alerts(Alerts),
    /// `/done <id> <step>`: step `step` of guided run `id` (`g…`) is done.
    Done { id: String, step: usize },
    /// `/abort <id>`: guided run `id` stops where it waits.
    Abort { id: String },
}

/// A catalog command of one profile with its arguments, validated and
/// normalized (defaults filled in, durations formatted, lists joined by `,`).
#[derive(Debug, Clone)]
pub struct Request<'c> {
    /// The catalog entry (its `profile` is the selected system).
    pub command: &'c Command,
    /// Argument name → normalized value. Absent optional args are not present.
    pub args: BTreeMap<String, String>,
    /// `--break-glass`: run at once, without the approval (only commands
    /// whose policy allows it; the pipeline checks for the incident).
    pub break_glass: bool,
}

impl Request<'_> {
    /// The canonical chat text of the request, e.g.
    /// `/queue clean ai-analysis --grace 1d`: args in definition order,
    /// defaults included, values quoted when needed. Parsing it again (with the
    /// same profile selected) gives the same request.
    pub fn display(&self) -> String {
        let mut out = format!("/{}", self.command.name);
        // Once a positional is missing, later ones must be named to keep their meaning.
        let mut positional_gap = false;
        for spec in &self.command.args {
            let Some(v) = self.args.get(&spec.name) else {
                positional_gap |= !spec.flag;
                continue;
            };
            out.push(' ');
            match (&spec.kind, spec.flag) {
                (ArgKind::Bool, _) if v == "true" => out.push_str(&format!("--{}", spec.name)),
                (ArgKind::Bool, _) => out.push_str(&format!("--{}={}", spec.name, quote(v))),
                (_, false) if !positional_gap => out.push_str(&quote(v)),
                _ => out.push_str(&format!("--{} {}", spec.name, quote(v))),
            }
        }
        out
    }

    /// SHA-256 (hex) of the profile, the command name, the canonical args
    /// (JSON of the sorted map) and the command's definition. An approval is
    /// bound to this value, so any change to the request, or to what the
    /// command does, needs a new approval.
    pub fn hash(&self) -> String {
        request_hash(self.command, &self.args)
    }
}

/// The hash an approval binds to: profile, command words, canonical args and
/// the command's [definition hash](Command::definition_hash). Recomputed at
/// decision and execution time from the stored args and the current catalog.
pub fn request_hash(cmd: &Command, args: &BTreeMap<String, String>) -> String {
    let args = serde_json::to_string(args).unwrap_or_default();
    let definition = cmd.definition_hash();
    let mut h = Sha256::new();
    for part in [&cmd.profile, &cmd.name, &args, &definition] {
        h.update(part.as_bytes());
        // Separator so that ("ab", "c") and ("a", "bc") differ.
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Checks stored `args` against `cmd`'s current argument specs, as the
/// parser would: every arg is defined, every value is what the parser
/// would produce for it, and every required positional is there. The error
/// names the first problem.
pub fn revalidate(cmd: &Command, args: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, v) in args {
        let spec = cmd
            .arg(name)
            .ok_or_else(|| format!("`{name}` is no longer an argument of `/{}`", cmd.name))?;
        match value::check(&spec.kind, name, v) {
            Ok(normal) if normal == *v => {}
            Ok(_) => return Err(format!("{name}: `{v}` is not in its normal form")),
            Err(e) => return Err(e),
        }
    }
    match cmd
        .args
        .iter()
        .find(|s| s.required && !args.contains_key(&s.name))
    {
        Some(s) => Err(format!("<{}> is missing", s.name)),
        None => Ok(()),
    }
}

/// Quotes a value for chat when it would not survive tokenizing as one word
/// (also after `--name=`).
pub fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && !v.starts_with("--")
        && !v
            .chars()
            .any(|c| c.is_whitespace() || tokenize::is_quote(c) || c == '\\');
    if plain {
        return v.to_string();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '\\' || tokenize::is_double_quote(c) {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// A mistake in what the user typed; `message` is shown to them as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// Friendly text: what was wrong, the usage line, a suggestion.
    pub message: String,
}

impl UsageError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
        }
    }
}

/// Parses one chat message (leading `/` optional) against the commands of the
/// enabled profiles. Never panics; every refusal is a [`UsageError`].
pub fn parse<'c>(catalog: &'c Catalog, scope: &Scope, text: &str) -> Result<Parsed<'c>, UsageError> {
    parse::parse(catalog, scope, text)
}

/// Help generated from the catalog: everything visible (`None`), one group
/// (`Some("queue")`) or one command (`Some("queue retry")`). An unknown topic
/// gives a short text with a suggestion.
pub fn help_text(catalog: &Catalog, scope: &Scope, topic: Option<&str>) -> String {
    help::help(catalog, scope, topic).unwrap_or_else(|e| e.message)
}
