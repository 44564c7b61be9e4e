//! Process actions: argv without a shell, program on the allow-list.
//!
//! Each argv element is rendered separately (an element that is exactly an
//! absent argument's placeholder is dropped), so a chat value is always one
//! argument and shell syntax in it is just text. The child gets a minimal
//! environment (PATH, HOME, USER, LANG, LC_ALL, TZ, TMPDIR) plus the action's
//! rendered `env`, so the bot's own secrets are not inherited. stdin is null;
//! on timeout the child is killed.
//!
//! A value never becomes an option: an element that starts with `-` only
//! because of an argument's value (`{key}` given as `-rf`, or `--help`) is
//! refused, whatever the argument's kind, unless a literal `--` earlier in
//! the argv ends the program's options. Options are written in the catalog
//! (`--lines={n}`, `-n`, `{n}`), never typed in chat; a negative number as a
//! separate element is refused too.

use super::{millis, render_escaped, render_optional, ExecError, ExecOutput, Executor};
use crate::catalog::ProcessAction;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Variables passed through from the bot's environment.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Bytes kept of each of stdout and stderr (the rest is read and discarded).
const MAX_CAPTURE_BYTES: usize = 1 << 20;

impl Executor {
    /// Runs a process action; `fields` is `{"exit_code", "stdout", "stderr"}`.
    pub(super) async fn run_process(
        &self,
        a: &ProcessAction,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        let argv = render_args(&a.argv, args)?;
        let Some(program) = argv.first().cloned() else {
            return Err(ExecError::Invalid {
                target: None,
                message: "process action has an empty argv".into(),
            });
        };
        if !self.limits.process_allow.contains(&program) {
            return Err(ExecError::NotAllowed { program });
        }
        let cmd = command(&program, &argv[1..], &a.env, args)?;
        let limit = a.timeout.unwrap_or(self.limits.default_timeout);
        let started = Instant::now();
        let run = run_child(cmd, &program);
        let (code, stdout, stderr) = match tokio::time::timeout(limit, run).await {
            Ok(r) => r?,
            // Dropping the future drops the child, which kill_on_drop kills.
            Err(_) => {
                return Err(ExecError::Timeout {
                    target: None,
                    what: format!("running `{program}` (killed)"),
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
        })
    }
}

/// The rendered argv (an element that is exactly an absent argument's
/// placeholder is dropped), refusing values that would be read as options.
/// Used by [`Executor::run_process`] and `exec::render`. No I/O.
pub(super) fn render_args(
    argv: &[String],
    args: &BTreeMap<String, String>,
) -> Result<Vec<String>, ExecError> {
    let mut out = Vec::with_capacity(argv.len());
    let mut options_ended = false;
    for tpl in argv {
        let Some(el) = render_optional(tpl, args)? else {
            continue;
        };
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

/// The command `program rest…`: no shell, minimal environment plus the rendered
/// `env`, stdin null, output piped, killed when dropped.
fn command(
    program: &str,
    rest: &[String],
    env: &BTreeMap<String, String>,
    args: &BTreeMap<String, String>,
) -> Result<tokio::process::Command, ExecError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .env_clear()
        .envs(
            INHERITED_ENV
                .iter()
                .filter_map(|k| Some((*k, std::env::var_os(k)?))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.envs(render_env(env, args)?);
    Ok(cmd)
}

/// The action's `env` with its templates rendered (values are literal).
pub(super) fn render_env(
    env: &BTreeMap<String, String>,
    args: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ExecError> {
    env.iter()
        .map(|(k, v)| Ok((k.clone(), render_escaped(v, args, str::to_string)?)))
        .collect()
}

/// Spawns `cmd`, reads both pipes to the end and waits; the exit code is
/// `None` when a signal ended the child.
async fn run_child(
    mut cmd: tokio::process::Command,
    program: &str,
) -> Result<(Option<i32>, String, String), ExecError> {
    let mut child = cmd.spawn().map_err(|e| ExecError::Spawn {
        program: program.to_string(),
        reason: e.to_string(),
    })?;
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
