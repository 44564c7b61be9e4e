//! Process actions: argv without a shell, program on the allow-list.
//!
//! Each argv element is rendered separately (an element that names only
//! absent arguments, `{n}` or `--period={period}`, is dropped), so a chat value is always one
//! argument and shell syntax in it is just text. The child gets a minimal
//! environment (PATH, HOME, USER, LANG, LC_ALL, TZ, TMPDIR) plus the action's
//! rendered `env` (an entry naming only absent arguments is left out), so the bot's own secrets are not inherited. stdin is null;
//! on timeout the child is killed.
//!
//! A value never becomes an option: an element that starts with `-` only
//! because of an argument's value (`{key}` given as `-rf`, or `--help`) is
//! refused, whatever the argument's kind, unless a literal `--` earlier in
//! the argv ends the program's options. Options are written in the catalog
//! (`--lines={n}`, `-n`, `{n}`), never typed in chat; a negative number as a
//! separate element is refused too.
//!
//! Files and directories are the profile's config values (`{logs.app}`,
//! `{logs.<l>}` picked by an enum argument, `cwd = "{app.dir}"`), never chat
//! values. `{run.ts}` is the run's UTC timestamp (`20261202T041500Z`, digits
//! and `T`, `Z` only), the same in every step of a seq: for backup names.
//!
//! A destructive command's previewed items reach a process as data, never
//! as code: the argv element `{preview.items}` becomes one element per item
//! (an item that is empty or starts with `-`, `!`, `(` or `)` is refused, so
//! it stays an operand), the env value `{preview.items}` the items one per
//! line (an item with a line break is refused). `{preview.<name>}` is the
//! preview's value `name` (a cutoff computed once).
//!
//! Secrets reach a process only through its environment, never its argv:
//! an env value may name `{secret.NAME}` (the bot's variable NAME, or the
//! file named by `NAME_FILE`), `{target.NAME}` (a target's URL, after
//! `OPSBOT_TARGET_<NAME>`) or one part of it, `{target.NAME.password}`
//! (`host`, `port`, `user`, `password`, `database`; an entry whose part the
//! URL lacks is left out, so libpq falls back to its default). Such an entry
//! is shown as `<secret.NAME>` / `<target.NAME.part>` wherever the action is
//! rendered (approval cards, audit, snapshots), and the values are added to
//! the redactor before the child starts, so output echoing them is redacted.
//!
//! A profile with an SSH host runs its actions there: the bot runs `ssh -o
//! BatchMode=yes -o StrictHostKeyChecking=yes [-p port] [-i key] user@host --
//! <command>`, still as argv. sshd hands `<command>` to the remote user's
//! shell, so every element of it is single-quoted for a POSIX shell (`'` as
//! `'\''`): a chat value stays one argument and inert there too. The
//! action's `env` becomes `env 'K=V' …` and its `cwd` a `cd '<dir>' &&` in
//! that command. An env entry holding a secret is not written there (the
//! remote command line shows in the remote host's process list and may be
//! logged): the command starts `IFS= read -r K && export K && …` and the bot
//! writes the value, one line per entry, to ssh's stdin, then closes it. A
//! secret with a line break is refused. On timeout the local ssh is killed; without a terminal the
//! remote command is not signalled and runs on until it next writes output.

use super::{millis, ExecError, ExecOutput, Executor};
use crate::catalog::{holds_secret, process_ref, Placement, ProcessAction, ProcessRef, SshHost, Target};
use crate::preview::ITEMS;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Variables passed through from the bot's environment.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Bytes kept of each of stdout and stderr (the rest is read and discarded).
const MAX_CAPTURE_BYTES: usize = 1 << 20;

impl Executor {
    /// Runs a process action; `fields` is `{"exit_code", "stdout", "stderr"}`.
    pub(super) async fn run_process(
        &self,
        a: &ProcessAction,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        let plan = plan(a, args, Secrets::Resolved(targets, &self.env))?;
        for secret in &plan.secrets {
            self.redactor.add(secret);
        }
        let program = plan.program.clone();
        if !self.limits.allows(&a.place.profile, &program) {
            return Err(ExecError::NotAllowed { program });
        }
        let what = match &a.place.host {
            Some(h) => format!("running `{program}` on {}", h.label()),
            None => format!("running `{program}`"),
        };
        // The local program: ssh (as configured) for a remote host.
        let local = match &a.place.host {
            Some(_) => self.limits.ssh_program.clone(),
            None => program.clone(),
        };
        let cmd = command(&local, &plan, &self.env)?;
        let limit = a.timeout.unwrap_or(self.limits.default_timeout);
        let started = Instant::now();
        let run = run_child(cmd, &local, plan.stdin.as_deref());
        let (code, stdout, stderr) = match tokio::time::timeout(limit, run).await {
            Ok(r) => r?,
            // Dropping the future drops the child, which kill_on_drop kills.
            Err(_) => {
                return Err(ExecError::Timeout {
                    target: None,
                    what: format!("{what} (killed)"),
                    after: limit,
                })
            }
        };
        if code != Some(0) {
            let source = if stderr.trim().is_empty() {
                &stdout
            } else {
                &stderr
            };
            return Err(ExecError::Exit {
                code,
                excerpt: self.excerpt(source),
            });
        }
        let text = if stderr.trim().is_empty() {
            stdout.clone()
        } else {
            format!("{stdout}\n[stderr]\n{stderr}")
        };
        Ok(ExecOutput {
            summary: format!("exit 0 in {} ms", millis(started.elapsed())),
            text,
            fields: json!({ "exit_code": 0, "stdout": stdout, "stderr": stderr }),
            effects: Vec::new(),
        })
    }
}

/// What a process action runs: the catalog's program (checked against the
/// allow-list), the argv the bot executes (`ssh …` for a remote host), its
/// extra environment and working directory (both inside the remote command
/// for a remote host). Used by [`Executor::run_process`] and `exec::render`.
/// No I/O but reading secrets when they are [`Secrets::Resolved`].
#[derive(Clone, PartialEq)]
pub(super) struct Plan {
    pub profile: String,
    pub program: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// For a remote host: the secret env values, one line each, for ssh's stdin.
    pub stdin: Option<String>,
    /// Secret values the plan holds, for the redactor.
    pub secrets: Vec<String>,
}

/// How a plan fills the secret references of env values.
#[derive(Clone, Copy)]
pub(super) enum Secrets<'a> {
    /// Shown as `<secret.NAME>`, `<target.NAME.part>`; nothing is read
    /// (rendering for cards, audit and snapshots).
    Masked,
    /// Read from these targets and from this environment (execution).
    Resolved(&'a BTreeMap<String, Target>, &'a HashMap<String, String>),
}

pub(super) fn plan(
    a: &ProcessAction,
    args: &BTreeMap<String, String>,
    secrets: Secrets,
) -> Result<Plan, ExecError> {
    let argv = render_args(&a.argv, args, &a.place)?;
    let Some(program) = argv.first().cloned() else {
        return Err(ExecError::Invalid {
            target: None,
            message: "process action has an empty argv".into(),
        });
    };
    let mut held = Vec::new();
    let (mut env, mut hidden) = (BTreeMap::new(), BTreeMap::new());
    // An entry naming only absent arguments is left out, as in argv.
    for (k, v) in a.env.iter().filter(|(_, v)| !names_only_absent_args(v, args)) {
        if let Some(lines) = item_lines(v, args)? {
            env.insert(k.clone(), lines);
        } else if !holds_secret(v) {
            env.insert(k.clone(), render(v, args, &a.place)?);
        } else if let Some(value) = render_secret(v, args, &a.place, secrets, &mut held)? {
            hidden.insert(k.clone(), value);
        }
    }
    // Only config values reach the working directory (checked at load).
    let cwd = a
        .cwd
        .as_deref()
        .map(|c| render(c, &BTreeMap::new(), &a.place))
        .transpose()?;
    let profile = a.place.profile.clone();
    Ok(match &a.place.host {
        None => {
            env.extend(hidden);
            Plan {
                profile,
                program,
                argv,
                env,
                cwd,
                stdin: None,
                secrets: held,
            }
        }
        Some(host) => {
            let names: Vec<&str> = hidden.keys().map(String::as_str).collect();
            let line = remote_command(&argv, &env, cwd.as_deref());
            let stdin = match secrets {
                Secrets::Masked => None,
                Secrets::Resolved(..) => Some(stdin_lines(&hidden)?),
            };
            Plan {
                profile,
                program,
                argv: ssh_argv(host, &read_then(&names, line)),
                env: BTreeMap::new(),
                cwd: None,
                stdin,
                secrets: held,
            }
        }
    })
}

/// `IFS= read -r A && IFS= read -r B && export A B && <line>`: the remote
/// shell reads the secret entries `names` from stdin (names were checked at
/// load to be shell variable names).
fn read_then(names: &[&str], line: String) -> String {
    if names.is_empty() {
        return line;
    }
    let reads: Vec<String> = names.iter().map(|n| format!("IFS= read -r {n} && ")).collect();
    format!("{}export {} && {line}", reads.concat(), names.join(" "))
}

/// The secret entries' values, one line each (in name order, as read).
fn stdin_lines(hidden: &BTreeMap<String, String>) -> Result<String, ExecError> {
    let mut out = String::new();
    for (k, v) in hidden {
        if v.contains(['\n', '\r']) {
            return Err(ExecError::Refused {
                target: None,
                what: format!("env `{k}`"),
                reason: "a secret with a line break cannot be passed to the remote host one line per value"
                    .into(),
            });
        }
        out.push_str(v);
        out.push('\n');
    }
    Ok(out)
}

/// An env value naming secrets: masked, or filled in (each secret value
/// pushed to `held`). `None` when it names a target part the URL lacks.
fn render_secret(
    tpl: &str,
    args: &BTreeMap<String, String>,
    place: &Placement,
    secrets: Secrets,
    held: &mut Vec<String>,
) -> Result<Option<String>, ExecError> {
    let mut failure: Option<ExecError> = None;
    let mut absent = false;
    let out = fill(tpl, args, place, |name, r| {
        let Secrets::Resolved(targets, env) = secrets else {
            return Some(format!("<{name}>"));
        };
        let value = match r {
            ProcessRef::Secret(var) => match super::http::env_secret(env, var) {
                Some(v) => {
                    held.push(v.clone());
                    Ok(Some(v))
                }
                None => Err(ExecError::Invalid {
                    target: None,
                    message: format!(
                        "the secret `{var}` is not set in the bot's environment (nor `{var}_FILE`)"
                    ),
                }),
            },
            ProcessRef::Target(t, part) => target_part(targets, t, part, held),
            _ => Ok(None),
        };
        match value {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                absent = true;
                Some(String::new())
            }
            Err(e) => {
                failure.get_or_insert(e);
                Some(String::new())
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None if absent => Ok(None),
        None => Ok(Some(out)),
    }
}

/// The URL of target `t`, or one part of it (`None` when the URL has no such
/// part). The whole URL and the password are pushed to `held`.
fn target_part(
    targets: &BTreeMap<String, Target>,
    t: &str,
    part: Option<&str>,
    held: &mut Vec<String>,
) -> Result<Option<String>, ExecError> {
    let raw = super::configured(targets, t)?.url.clone();
    held.push(raw.clone());
    let parsed = reqwest::Url::parse(&raw);
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    // The password is a secret in whatever output echoes it, URL or not.
    if let Some(p) = parsed.as_ref().ok().and_then(|u| u.password()) {
        held.extend([p.to_string(), decode(p)]);
    }
    let Some(part) = part else {
        return Ok(Some(raw));
    };
    let url = parsed.map_err(|_| ExecError::Invalid {
        target: Some(t.to_string()),
        message: "the target's URL does not parse, so its parts are unknown".into(),
    })?;
    let value = match part {
        "host" => url.host_str().map(str::to_string),
        "port" => url.port().map(|p| p.to_string()),
        "user" => Some(decode(url.username())),
        "password" => url.password().map(decode),
        "database" => Some(decode(url.path().trim_start_matches('/'))),
        _ => None,
    };
    Ok(value.filter(|v| !v.is_empty()))
}

/// `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes [-p port] [-i key]
/// user@host -- <command>`: no password prompt, no unknown host keys.
pub fn ssh_argv(host: &SshHost, command: &str) -> Vec<String> {
    let mut v: Vec<String> = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        .map(String::from)
        .to_vec();
    if let Some(p) = host.port {
        v.extend(["-p".to_string(), p.to_string()]);
    }
    if let Some(k) = &host.key {
        v.extend(["-i".to_string(), k.clone()]);
    }
    v.extend([
        format!("{}@{}", host.user, host.host),
        "--".into(),
        command.into(),
    ]);
    v
}

/// The remote shell's command line: `[cd 'dir' && ][env 'K=V' … ]'prog' 'arg' …`,
/// every element quoted by [`shell_quote`].
pub fn remote_command(argv: &[String], env: &BTreeMap<String, String>, cwd: Option<&str>) -> String {
    let mut words: Vec<String> = Vec::new();
    if !env.is_empty() {
        words.push(shell_quote("env"));
        words.extend(env.iter().map(|(k, v)| shell_quote(&format!("{k}={v}"))));
    }
    words.extend(argv.iter().map(|a| shell_quote(a)));
    let line = words.join(" ");
    match cwd {
        Some(dir) => format!("cd {} && {line}", shell_quote(dir)),
        None => line,
    }
}

/// `s` as one word of a POSIX shell: single-quoted, each `'` as `'\''`.
/// Nothing inside single quotes is special to the shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `tpl` with arguments, the placement's config values and `{run.*}` filled
/// in; a placeholder without a value is an error. Secrets are not filled in.
fn render(tpl: &str, args: &BTreeMap<String, String>, place: &Placement) -> Result<String, ExecError> {
    fill(tpl, args, place, |_, _| None)
}

/// [`render`], with `secret` answering the secret references (`secret.*`,
/// `target.*`); one pass, so braces inside a value are never read as placeholders.
fn fill(
    tpl: &str,
    args: &BTreeMap<String, String>,
    place: &Placement,
    mut secret: impl FnMut(&str, ProcessRef) -> Option<String>,
) -> Result<String, ExecError> {
    let mut missing: Option<String> = None;
    let out = crate::template::render(tpl, |name| {
        let v = match process_ref(name) {
            ProcessRef::Arg(a) => args.get(a).cloned(),
            // The preview's values come with the arguments (`Previewed::args`).
            ProcessRef::Value(v) if v.starts_with("preview.") => args.get(v).cloned(),
            ProcessRef::Value(v) => place.values.get(v).cloned(),
            ProcessRef::Keyed(prefix, a) => args
                .get(a)
                .and_then(|x| place.values.get(&format!("{prefix}.{x}")))
                .cloned(),
            // Execution always sets it (`Executor::execute`); a rendering shows the name.
            ProcessRef::Run(_) => Some(args.get(name).cloned().unwrap_or_else(|| format!("<{name}>"))),
            r => secret(name, r),
        };
        if v.is_none() {
            missing.get_or_insert_with(|| name.to_string());
        }
        v
    });
    match missing {
        Some(name) => Err(ExecError::MissingArg { name }),
        None => Ok(out),
    }
}

/// The rendered argv (an element that names only absent arguments is
/// dropped), refusing values that would be read as options.
fn render_args(
    argv: &[String],
    args: &BTreeMap<String, String>,
    place: &Placement,
) -> Result<Vec<String>, ExecError> {
    let mut out = Vec::with_capacity(argv.len());
    let mut options_ended = false;
    for tpl in argv {
        if names_only_absent_args(tpl, args) {
            continue;
        }
        if let Some(items) = item_list(tpl, args)? {
            out.extend(items);
            continue;
        }
        let el = render(tpl, args, place)?;
        if !out.is_empty() && !options_ended && el.starts_with('-') && !tpl.starts_with('-') {
            return Err(ExecError::Refused {
                target: None,
                what: format!("argument `{}`", super::one_line(&el, 40)),
                reason: "a value may not start with `-` where the program would read it as an option".into(),
            });
        }
        options_ended |= tpl == "--";
        out.push(el);
    }
    Ok(out)
}

/// The previewed items when `tpl` is exactly `{preview.items}`: one argv
/// element each (a rendering without them shows the placeholder's value).
/// An item is refused where a program would read it as anything but an
/// operand: empty, or starting with `-` (an option, even after `--`: a script
/// run by `npm run x --` parses its own), `!`, `(` or `)` (find's operators).
fn item_list(tpl: &str, args: &BTreeMap<String, String>) -> Result<Option<Vec<String>>, ExecError> {
    if crate::template::sole_placeholder(tpl) != Some(ITEMS) {
        return Ok(None);
    }
    let Some(items) = previewed_items(args)? else {
        return Ok(args.get(ITEMS).map(|shown| vec![shown.clone()]));
    };
    for item in &items {
        if item.is_empty() || item.starts_with(['-', '!', '(', ')']) {
            return Err(ExecError::Refused {
                target: None,
                what: format!("previewed item `{}`", super::one_line(item, 40)),
                reason: "an item handed to a program may not be empty nor start with `-`, `!`, `(` or `)`"
                    .into(),
            });
        }
    }
    Ok(Some(items))
}

/// The env value `{preview.items}`: the items one per line (an item with a
/// line break is refused: it would read as two).
fn item_lines(tpl: &str, args: &BTreeMap<String, String>) -> Result<Option<String>, ExecError> {
    if crate::template::sole_placeholder(tpl) != Some(ITEMS) {
        return Ok(None);
    }
    let Some(items) = previewed_items(args)? else {
        return Ok(args.get(ITEMS).cloned());
    };
    if let Some(bad) = items.iter().find(|i| i.contains(['\n', '\r'])) {
        return Err(ExecError::Refused {
            target: None,
            what: format!("previewed item `{}`", super::one_line(bad, 40)),
            reason: "an item with a line break cannot be passed one item per line".into(),
        });
    }
    Ok(Some(items.join("\n")))
}

/// The previewed items handed to this run, if any (`Previewed::args`).
pub(super) fn previewed_items(args: &BTreeMap<String, String>) -> Result<Option<Vec<String>>, ExecError> {
    crate::preview::item_list(args)
        .transpose()
        .map_err(|message| ExecError::Invalid {
            target: None,
            message,
        })
}

/// An element that names at least one argument, and only arguments that are
/// absent (`{lines}`, `--period={period}`), is left out.
fn names_only_absent_args(tpl: &str, args: &BTreeMap<String, String>) -> bool {
    let names = crate::template::placeholders(tpl);
    !names.is_empty()
        && names
            .iter()
            .all(|n| matches!(process_ref(n), ProcessRef::Arg(a) if !args.contains_key(a)))
}

/// The command `program` with the plan's arguments: no shell, minimal
/// environment (the [`INHERITED_ENV`] entries of the bot's `env`) plus the
/// plan's `env`, its `cwd`, stdin null, output piped, killed when dropped.
fn command(
    program: &str,
    plan: &Plan,
    env: &HashMap<String, String>,
) -> Result<tokio::process::Command, ExecError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&plan.argv[1..])
        .env_clear()
        .envs(INHERITED_ENV.iter().filter_map(|k| Some((*k, env.get(*k)?))))
        .envs(&plan.env)
        .stdin(if plan.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &plan.cwd {
        cmd.current_dir(dir);
    }
    Ok(cmd)
}

/// Spawns `cmd`, writes `stdin` (if any) and closes it, reads both pipes to
/// the end and waits; the exit code is `None` when a signal ended the child.
async fn run_child(
    mut cmd: tokio::process::Command,
    program: &str,
    stdin: Option<&str>,
) -> Result<(Option<i32>, String, String), ExecError> {
    let mut child = cmd.spawn().map_err(|e| ExecError::Spawn {
        program: program.to_string(),
        reason: e.to_string(),
    })?;
    // A few short lines: they fit the pipe, and dropping it sends EOF.
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes()).await;
    }
    let out = child.stdout.take();
    let err = child.stderr.take();
    let (stdout, stderr, status) = tokio::join!(capture(out), capture(err), child.wait());
    let status = status.map_err(|e| ExecError::Spawn {
        program: program.to_string(),
        reason: e.to_string(),
    })?;
    Ok((status.code(), stdout, stderr))
}

/// Reads a pipe to the end, keeping at most [`MAX_CAPTURE_BYTES`].
async fn capture<R: AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = MAX_CAPTURE_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}
