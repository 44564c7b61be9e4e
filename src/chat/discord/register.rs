//! The catalog as Discord application commands. Pure: catalog → the JSON of
//! a bulk overwrite (`PUT /applications/{id}/commands`) and every entry that
//! Discord's limits cannot hold, named by `file:line`.
//!
//! Chat words map to Discord's nesting: `/queue retry <queue>` is command
//! `queue`, subcommand `retry`, option `queue`; `/db archive conversations`
//! is command `db`, group `archive`, subcommand `conversations`. Enums become
//! string options with choices, ints integer options with their range, flags
//! boolean options; everything else is a string the parser checks as typed.
//! Words in several profiles become one subcommand with a `sys` choice.

use crate::catalog::{ArgKind, ArgSpec, Catalog, Command, Problem};
use crate::command::quote;
use serde_json::{json, Value};
use serenity::all::{
    CommandDataOption, CommandDataOptionValue, CommandOptionType, CreateCommand, CreateCommandOption,
};
use std::collections::BTreeMap;

/// Discord's limits on application commands.
pub const MAX_NAME: usize = 32;
pub const MAX_DESCRIPTION: usize = 100;
pub const MAX_CHOICES: usize = 25;
pub const MAX_OPTIONS: usize = 25;
pub const MAX_COMMANDS: usize = 100;
/// Longest value of a string option Discord accepts.
pub const MAX_STRING: usize = 6_000;

/// The option of `/incident`, `/oncall` and `/alerts` that holds the rest of the
/// command line, passed on as typed.
const RAW_OPTION: &str = "what";

/// One option of a built-in: name, description, required.
pub type BuiltinOption = (&'static str, &'static str, bool);

/// The built-in commands: name, description, options.
pub const BUILTINS: [(&str, &str, &[BuiltinOption]); 11] = [
    (
        "approve",
        "Approve a pending request",
        &[("id", "the request's id, like a12", true)],
    ),
    (
        "reject",
        "Reject a pending request",
        &[
            ("id", "the request's id, like a12", true),
            ("reason", "why, for the requester", false),
        ],
    ),
    (
        "cancel",
        "Cancel your own pending request",
        &[("id", "the request's id, like a12", true)],
    ),
    ("approvals", "List the requests waiting for approval", &[]),
    (
        "incident",
        "Declare and run an incident",
        &[(
            "what",
            "declare P1 <title> · ack · update <text> · resolve · status · timeline …",
            true,
        )],
    ),
    ("incidents", "The open incidents", &[]),
    (
        "oncall",
        "Who is on call; overrides",
        &[("what", "a rotation, or override <person> <duration>", false)],
    ),
    (
        "alerts",
        "What is firing; silences and maintenance windows",
        &[(
            "what",
            "silences · silence <matchers> <dur> [comment] · maintenance <system> <dur> · unsilence <id>",
            false,
        )],
    ),
    (
        "done",
        "Confirm a guided run's manual step",
        &[
            ("id", "the run's id, like g1a2b3c4d", true),
            ("step", "the step's number, as its message shows", true),
        ],
    ),
    (
        "abort",
        "Stop a guided run where it waits",
        &[("id", "the run's id, like g1a2b3c4d", true)],
    ),
    (
        "help",
        "What opsbot can do, or how to use one command",
        &[("command", "a command, e.g. queue retry", false)],
    ),
];

/// The commands to register, or every catalog entry that cannot be mapped.
pub fn commands(catalog: &Catalog, profiles: &[String]) -> Result<Vec<Value>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut tops: BTreeMap<&str, Top> = BTreeMap::new();
    for cmd in catalog.commands.iter().filter(|c| profiles.contains(&c.profile)) {
        let words: Vec<&str> = cmd.name.split(' ').collect();
        for w in &words {
            if let Err(why) = check_name(w) {
                problems.push(problem(cmd, format!("`{w}` {why}")));
            }
        }
        if cmd.args.iter().any(|a| a.name == RAW_OPTION) {
            problems.push(problem(
                cmd,
                format!(
                    "the argument name `{RAW_OPTION}` is reserved on Discord for the rest of a command line"
                ),
            ));
        }
        let top = tops.entry(words[0]).or_default();
        match words[1..] {
            [] => top.direct.push(cmd),
            [sub] => top.subs.entry(sub).or_default().push(cmd),
            [group, sub] => top
                .groups
                .entry(group)
                .or_default()
                .entry(sub)
                .or_default()
                .push(cmd),
            _ => problems.push(problem(
                cmd,
                format!(
                    "`/{}` has {} words; Discord nests at most three (command, group, subcommand)",
                    cmd.name,
                    words.len()
                ),
            )),
        }
    }
    let mut out: Vec<Value> = BUILTINS.iter().map(builtin).collect();
    for (name, top) in &tops {
        if let Some((_, _, _)) = BUILTINS.iter().find(|b| b.0 == *name) {
            for c in top.all() {
                problems.push(problem(c, format!("`/{name}` is a built-in command")));
            }
            continue;
        }
        match top.build(name, &mut problems) {
            Some(c) => out.push(to_json(&c)),
            None => continue,
        }
    }
    if out.len() > MAX_COMMANDS {
        let first = catalog.commands.first();
        problems.push(Problem {
            file: first.map(|c| c.location.file.clone()).unwrap_or_default(),
            line: 0,
            message: format!(
                "{} top-level commands; Discord allows at most {MAX_COMMANDS}",
                out.len()
            ),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Catalog commands under one first word.
#[derive(Default)]
struct Top<'a> {
    direct: Vec<&'a Command>,
    subs: BTreeMap<&'a str, Vec<&'a Command>>,
    groups: BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a Command>>>,
}

impl<'a> Top<'a> {
    fn all(&self) -> Vec<&'a Command> {
        let nested = self.groups.values().flat_map(|g| g.values().flatten());
        self.direct
            .iter()
            .chain(self.subs.values().flatten())
            .chain(nested)
            .copied()
            .collect()
    }

    /// How many subcommands and groups the command would have (a
    /// subcommand that joins its group as an enum's values is not one).
    fn entries(&self) -> usize {
        let subs = self.subs.keys().filter(|s| !self.groups.contains_key(*s)).count();
        subs + self.groups.len()
    }

    fn build(&self, name: &str, problems: &mut Vec<Problem>) -> Option<CreateCommand> {
        if !self.direct.is_empty() && (!self.subs.is_empty() || !self.groups.is_empty()) {
            for c in &self.direct {
                problems.push(problem(
                    c,
                    format!(
                        "`/{name}` is both a command and a group of commands; Discord needs one or the other"
                    ),
                ));
            }
            return None;
        }
        if self.direct.is_empty() && self.entries() > MAX_OPTIONS {
            return Some(raw(name));
        }
        let before = problems.len();
        let command = if self.direct.is_empty() {
            let mut subs: Vec<CreateCommandOption> = Vec::new();
            for (sub, cmds) in &self.subs {
                if self.groups.contains_key(sub) {
                    // Joins the group (below), or cannot be registered.
                    if leading_enum(cmds).is_none() {
                        for c in cmds {
                            problems.push(problem(
                                c,
                                format!(
                                    "`/{}` is both a subcommand and a group; Discord needs one or the other",
                                    c.name
                                ),
                            ));
                        }
                    }
                    continue;
                }
                subs.push(subcommand(sub, cmds, None, problems));
            }
            for (group, inner) in &self.groups {
                let mut g = CreateCommandOption::new(
                    CommandOptionType::SubCommandGroup,
                    *group,
                    format!("/{name} {group} …"),
                );
                let mut cmds: Vec<&Command> = inner.values().flatten().copied().collect();
                let mut count = inner.len();
                for (sub, cmds) in inner {
                    g = g.add_sub_option(subcommand(sub, cmds, None, problems));
                }
                // `/db reindex <k:{index,table}> <name>` beside `/db reindex
                // database`: each value of k is a subcommand of the group.
                let direct = self.subs.get(group).map(Vec::as_slice).unwrap_or_default();
                if let Some((arg, values)) = leading_enum(direct) {
                    count += values.len();
                    cmds.extend(direct);
                    for v in values {
                        if inner.contains_key(v.as_str()) {
                            for c in direct {
                                problems.push(problem(
                                    c,
                                    format!("`/{} {v}` is both a command and a value of `{arg}`", c.name),
                                ));
                            }
                        }
                        g = g.add_sub_option(subcommand(v, direct, Some(arg), problems));
                    }
                }
                too_many(count, "subcommands", &cmds, problems);
                subs.push(g);
            }
            too_many(subs.len(), "subcommands and groups", &self.all(), problems);
            CreateCommand::new(name)
                .description(format!("/{name} commands"))
                .set_options(subs)
        } else {
            let desc = description(&self.direct, problems);
            CreateCommand::new(name)
                .description(desc)
                .set_options(options(&self.direct, None, problems))
        };
        (problems.len() == before).then_some(command)
    }
}

/// The name and values of the enum that is the first argument, required and
/// positional, of every one of `cmds` (with the same values), if there is one.
/// Its value is then the subcommand's name: [`text`] gives it back as the
/// word after the command's own, which the parser reads as that argument.
fn leading_enum<'a>(cmds: &[&'a Command]) -> Option<(&'a str, &'a [String])> {
    let first = |c: &&'a Command| match c.args.first() {
        Some(
            a @ ArgSpec {
                kind: ArgKind::Enum(values),
                flag: false,
                required: true,
                ..
            },
        ) => Some((a.name.as_str(), values.as_slice())),
        _ => None,
    };
    let found = first(cmds.first()?)?;
    cmds.iter().all(|c| first(c) == Some(found)).then_some(found)
}

/// One subcommand for the commands with these words (one per profile),
/// without the argument `skip` (whose value the subcommand's name is).
fn subcommand(
    name: &str,
    cmds: &[&Command],
    skip: Option<&str>,
    problems: &mut Vec<Problem>,
) -> CreateCommandOption {
    let desc = description(cmds, problems);
    let mut sub = CreateCommandOption::new(CommandOptionType::SubCommand, name, desc);
    for o in options(cmds, skip, problems) {
        sub = sub.add_sub_option(o);
    }
    sub
}

/// The summary (the same in every profile, or the first profile's).
fn description(cmds: &[&Command], problems: &mut Vec<Problem>) -> String {
    let c = cmds[0];
    let n = c.summary.chars().count();
    if n == 0 || n > MAX_DESCRIPTION {
        problems.push(problem(
            c,
            format!(
                "summary of `/{}` has {n} characters; Discord needs 1 to {MAX_DESCRIPTION}",
                c.name
            ),
        ));
    }
    c.summary.clone()
}

/// The options of these commands: the union of their args (required ones
/// first, as Discord demands), plus `sys` when the words are in several profiles.
fn options(cmds: &[&Command], skip: Option<&str>, problems: &mut Vec<Problem>) -> Vec<CreateCommandOption> {
    let mut seen: BTreeMap<&str, (&Command, &ArgSpec)> = BTreeMap::new();
    let mut specs: Vec<(&Command, &ArgSpec, bool)> = Vec::new();
    for c in cmds {
        for a in c.args.iter().filter(|a| Some(a.name.as_str()) != skip) {
            match seen.get(a.name.as_str()) {
                Some((first, prev)) if prev.kind.name() != a.kind.name() => problems.push(problem(
                    c,
                    format!(
                        "option `{}` of `/{}` is {} here but {} in profile `{}`; one Discord option cannot be both",
                        a.name,
                        c.name,
                        a.kind.name(),
                        prev.kind.name(),
                        first.profile
                    ),
                )),
                Some(_) => {}
                None => {
                    seen.insert(&a.name, (c, a));
                    let everywhere = cmds.iter().all(|o| o.arg(&a.name).is_some_and(required));
                    specs.push((c, a, everywhere));
                }
            }
        }
    }
    specs.sort_by_key(|(_, _, req)| !*req);
    let mut out: Vec<CreateCommandOption> = specs
        .into_iter()
        .map(|(c, a, req)| option(c, a, req, problems))
        .collect();
    if cmds.len() > 1 {
        let mut sys =
            CreateCommandOption::new(CommandOptionType::String, "sys", "which system").required(false);
        for c in cmds {
            sys = sys.add_string_choice(&c.profile, &c.profile);
        }
        out.push(sys);
    }
    too_many(out.len(), "options", cmds, problems);
    out
}

fn required(a: &ArgSpec) -> bool {
    a.required && a.default.is_none()
}

fn option(c: &Command, a: &ArgSpec, req: bool, problems: &mut Vec<Problem>) -> CreateCommandOption {
    if let Err(why) = check_name(&a.name) {
        problems.push(problem(c, format!("option `{}` {why}", a.name)));
    }
    let desc = match &a.help {
        Some(h) => {
            let n = h.chars().count();
            if n > MAX_DESCRIPTION {
                problems.push(problem(
                    c,
                    format!(
                        "help of option `{}` has {n} characters; Discord allows {MAX_DESCRIPTION}",
                        a.name
                    ),
                ));
            }
            h.clone()
        }
        None => generated_help(a),
    };
    let kind = match &a.kind {
        ArgKind::Bool => CommandOptionType::Boolean,
        ArgKind::Int { .. } => CommandOptionType::Integer,
        _ => CommandOptionType::String,
    };
    let mut o = CreateCommandOption::new(kind, &a.name, desc).required(req);
    match &a.kind {
        ArgKind::Enum(values) => {
            if values.len() > MAX_CHOICES {
                problems.push(problem(
                    c,
                    format!(
                        "option `{}` has {} choices; Discord allows {MAX_CHOICES}",
                        a.name,
                        values.len()
                    ),
                ));
            }
            for v in values {
                if v.chars().count() > MAX_DESCRIPTION {
                    problems.push(problem(
                        c,
                        format!("choice `{v}` is longer than {MAX_DESCRIPTION} characters"),
                    ));
                }
                o = o.add_string_choice(v, v);
            }
        }
        // serenity's builder takes only non-negative bounds; a negative one is
        // left to the parser, which checks every range as typed.
        ArgKind::Int { min, max } => {
            if let Ok(lo) = u64::try_from(*min) {
                o = o.min_int_value(lo);
            }
            if let Ok(hi) = u64::try_from(*max) {
                o = o.max_int_value(hi);
            }
        }
        ArgKind::String { max_len, .. } => {
            o = o.max_length(u16::try_from((*max_len).min(MAX_STRING)).unwrap_or(u16::MAX));
        }
        _ => {}
    }
    o
}

/// An option description from the kind when the catalog gives none.
fn generated_help(a: &ArgSpec) -> String {
    let mut s = match &a.kind {
        ArgKind::Enum(_) => "one of the listed values".to_string(),
        ArgKind::Int { min, max } => format!("a whole number, {min} to {max}"),
        ArgKind::Duration => "a duration, e.g. 30s, 5m, 1h".into(),
        ArgKind::String { .. } => "text".into(),
        ArgKind::Id => "an id (letters, digits, _ . : -)".into(),
        ArgKind::Ip { .. } => "a public IP address".into(),
        ArgKind::Bool => "switch it on".into(),
        ArgKind::List(inner) => format!("comma-separated: {}", inner.placeholder()),
    };
    if let Some(d) = &a.default {
        s.push_str(&format!(" (default {d})"));
    }
    crate::chat::text::truncate(&mut s, MAX_DESCRIPTION);
    s
}

fn too_many(n: usize, what: &str, cmds: &[&Command], problems: &mut Vec<Problem>) {
    if n > MAX_OPTIONS {
        if let Some(c) = cmds.first() {
            problems.push(problem(
                c,
                format!("`/{}`: {n} {what}; Discord allows {MAX_OPTIONS}", c.name),
            ));
        }
    }
}

/// Discord's rule for command and option names: 1–32 lower-case letters,
/// digits, `-` or `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(format!("has {n} characters; Discord names have 1 to {MAX_NAME}"));
    }
    let ok = |c: char| c == '-' || c == '_' || c.is_numeric() || (c.is_alphabetic() && !c.is_uppercase());
    match name.chars().find(|c| !ok(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "contains `{c}`; Discord names are lower-case letters, digits, - and _"
        )),
    }
}

/// The chat text of an invoked command: `/queue retry --queue="ai-analysis"`
/// (each option by name, which the parser accepts for positionals too), or
/// a built-in's own syntax (`/approve a7`, `/reject a7 too risky`).
pub fn text(name: &str, options: &[CommandDataOption]) -> String {
    let mut words = vec![format!("/{name}")];
    let mut opts = options;
    // Descend through the group and subcommand.
    while let [CommandDataOption {
        name,
        value: CommandDataOptionValue::SubCommand(inner) | CommandDataOptionValue::SubCommandGroup(inner),
        ..
    }] = opts
    {
        words.push(name.clone());
        opts = inner;
    }
    if let Some((_, _, order)) = BUILTINS.iter().find(|b| b.0 == name) {
        // Built-ins take their options positionally, in the registered order.
        for (opt, _, _) in *order {
            if let Some(v) = opts.iter().find(|o| o.name == *opt).and_then(|o| plain(&o.value)) {
                // `what` is the rest of a command line, typed as such.
                words.push(if *opt == RAW_OPTION { v } else { quote(&v) });
            }
        }
        return words.join(" ");
    }
    // A command registered with one `what` (see `raw`): the line as typed.
    if let [CommandDataOption { name: opt, value, .. }] = opts {
        if words.len() == 1 && opt == RAW_OPTION {
            if let Some(v) = plain(value) {
                words.push(v);
                return words.join(" ");
            }
        }
    }
    for o in opts {
        match &o.value {
            CommandDataOptionValue::Boolean(true) => words.push(format!("--{}", o.name)),
            CommandDataOptionValue::Boolean(false) => {}
            v => {
                if let Some(v) = plain(v) {
                    words.push(format!("--{}={}", o.name, quote(&v)));
                }
            }
        }
    }
    words.join(" ")
}

fn plain(v: &CommandDataOptionValue) -> Option<String> {
    match v {
        // A code block opsbot posted keeps backtick runs apart with U+200B;
        // pasted back, it is not part of the value.
        CommandDataOptionValue::String(s) => Some(s.replace('\u{200b}', "")),
        CommandDataOptionValue::Integer(i) => Some(i.to_string()),
        CommandDataOptionValue::Number(n) => Some(n.to_string()),
        CommandDataOptionValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn builtin((name, desc, opts): &(&str, &str, &[BuiltinOption])) -> Value {
    let options = opts
        .iter()
        .map(|(n, d, req)| CreateCommandOption::new(CommandOptionType::String, *n, *d).required(*req))
        .collect();
    to_json(&CreateCommand::new(*name).description(*desc).set_options(options))
}

/// A command word with more subcommands than Discord holds (`/db` of every
/// profile): one string option `what` for the rest of the command line,
/// which the parser checks as typed, as for `/incident` and `/alerts`.
fn raw(name: &str) -> CreateCommand {
    let what = CreateCommandOption::new(
        CommandOptionType::String,
        RAW_OPTION,
        format!("the rest of the command, as typed after /{name} (see /help {name})"),
    )
    .required(true);
    CreateCommand::new(name)
        .description(format!("/{name} commands: type the rest, e.g. what: help"))
        .add_option(what)
}

/// The JSON Discord receives.
fn to_json(c: &CreateCommand) -> Value {
    serde_json::to_value(c).unwrap_or_else(|_| json!({}))
}

fn problem(c: &Command, message: String) -> Problem {
    Problem {
        file: c.location.file.clone(),
        line: c.location.line,
        message: format!("discord: {message}"),
    }
}
