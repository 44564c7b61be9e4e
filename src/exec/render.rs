//! What an action would send, without sending it: the HTTP request line and
//! body, the Redis argv or checked pattern, the SQL text with its bound
//! parameters; for a `seq`, each of its steps in order. Pure (no I/O). The executors build their requests with the same
//! functions, so the rendering is what they send; `/help`-style previews and
//! the catalog tests' snapshots use it.

use super::{http, internal, lookup, process, redis, sql, summarize, variants, ExecError, RedisPlan};
use crate::catalog::{Action, InternalAction, Seq, Step, Target, TargetKind};
use std::collections::BTreeMap;
use std::fmt;

/// One action rendered for one invocation. `Display` gives a stable text with
/// every chat value quoted, so injection attempts stay visible.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// Method, path with query (never the target's base URL, which may hold
    /// credentials) and JSON body.
    Http {
        target: String,
        method: String,
        path: String,
        body: Option<serde_json::Value>,
    },
    Redis {
        target: String,
        plan: RedisPlan,
    },
    /// Query text as written in the catalog (its identifiers written in, quoted)
    /// and the parameters bound to it (`None` = NULL); `transaction` false
    /// when it runs outside one.
    Sql {
        target: String,
        query: String,
        params: Vec<Option<String>>,
        transaction: bool,
    },
    /// `program` is the catalog's (on the allow-list); `argv` what the bot
    /// runs (`ssh … -- '<program>' …` for a profile with an SSH host).
    Process {
        /// The command's profile (whose allow-list applies).
        profile: String,
        program: String,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
    },
    /// `GET <path>` per component.
    Health {
        checks: Vec<(String, String, String)>,
    },
    /// Every step, in order, then every `finally` step.
    Seq {
        steps: Vec<Rendered>,
        finally: Vec<Rendered>,
    },
    /// An action whose output the bot then summarizes, and how (in words).
    Summarize {
        of: Box<Rendered>,
        how: Vec<String>,
    },
    /// An action run once per previewed item (shown with the item as
    /// `<preview.item>` unless one is given).
    Each {
        of: Box<Rendered>,
    },
    /// A link answered by opsbot: its target and path (not the base URL).
    Link {
        target: String,
        path: String,
    },
    /// A maintenance step, in words (what it does to the window).
    Maintenance {
        what: String,
    },
    /// A guided step: what a person confirms, and within how long.
    Confirm {
        text: String,
        within: std::time::Duration,
    },
}

/// Renders `action` with `args` against `targets` and applies the same checks
/// as execution (unknown or wrong-kind targets, path segments, Redis refusals).
pub fn render(
    action: &Action,
    targets: &BTreeMap<String, Target>,
    args: &BTreeMap<String, String>,
) -> Result<Rendered, ExecError> {
    Ok(match action {
        Action::Http(a) => {
            let t = lookup(targets, &a.target, TargetKind::Http)?;
            let p = http::request(t, a, args)?;
            Rendered::Http {
                target: t.name.clone(),
                method: p.method.to_string(),
                path: http::path_and_query(&p.url),
                body: http::shown_body(a, p.body),
            }
        }
        Action::Redis(a) => {
            let t = lookup(targets, &a.target, TargetKind::Redis)?;
            Rendered::Redis {
                target: t.name.clone(),
                plan: redis::plan(t, a, args)?,
            }
        }
        Action::Sql(a) => {
            let t = lookup(targets, &a.target, TargetKind::Sql)?;
            Rendered::Sql {
                target: t.name.clone(),
                query: sql::statement(a, t, args)?,
                params: sql::params(a, args)?,
                transaction: a.transaction,
            }
        }
        Action::Process(a) => {
            let p = process::plan(a, args, process::Secrets::Masked)?;
            Rendered::Process {
                profile: p.profile,
                program: p.program,
                argv: p.argv,
                env: p.env,
                cwd: p.cwd,
            }
        }
        Action::Health(a) => Rendered::Health {
            checks: a
                .checks
                .iter()
                .map(|c| (c.component.clone(), c.target.clone(), c.path.clone()))
                .collect(),
        },
        Action::Seq(seq) => {
            let (steps, finally) = render_seq(seq, targets, args)?;
            Rendered::Seq { steps, finally }
        }
        Action::Internal(InternalAction::Link { target, path }) => Rendered::Link {
            target: target.clone(),
            path: http::path_and_query(&internal::link(targets, target, path, args)?),
        },
        Action::Internal(InternalAction::Maintenance(step)) => Rendered::Maintenance {
            what: internal::describe(step, args)?,
        },
        Action::Internal(InternalAction::Confirm(step)) => Rendered::Confirm {
            text: internal::confirm_text(step, args)?,
            within: step.within,
        },
        // The choice is what is sent.
        Action::Variants(v) => return render(variants::choose(v, args)?, targets, args),
        Action::Summarize(s) => Rendered::Summarize {
            of: Box::new(render(&s.of.action, targets, args)?),
            how: summarize::describe(s),
        },
        Action::Each(s) => {
            let mut one = args.clone();
            let shown = format!("<{}>", crate::preview::ITEM);
            one.entry(crate::preview::ITEM.to_string()).or_insert(shown);
            Rendered::Each {
                of: Box::new(render(&s.action, targets, &one)?),
            }
        }
    })
}

/// Renders every step of a `seq`; a refusal names its step.
fn render_steps(
    steps: &[Step],
    targets: &BTreeMap<String, Target>,
    args: &BTreeMap<String, String>,
    first: usize,
    of: usize,
) -> Result<Vec<Rendered>, ExecError> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| render(&s.action, targets, args).map_err(|e| e.in_step(first + i, of)))
        .collect()
}

/// The steps and the `finally` steps of `seq`, rendered; a refusal names
/// its step counting the finally steps after the others.
pub(super) fn render_seq(
    seq: &Seq,
    targets: &BTreeMap<String, Target>,
    args: &BTreeMap<String, String>,
) -> Result<(Vec<Rendered>, Vec<Rendered>), ExecError> {
    let of = seq.steps.len() + seq.finally.len();
    let steps = render_steps(&seq.steps, targets, args, 1, of)?;
    let finally = render_steps(&seq.finally, targets, args, seq.steps.len() + 1, of)?;
    Ok((steps, finally))
}

/// `{word}1/2 <step>` per step; a step's later lines (bodies, parameters)
/// are indented under it.
fn write_steps(f: &mut fmt::Formatter<'_>, steps: &[Rendered], word: &str) -> fmt::Result {
    let of = steps.len();
    for (i, step) in steps.iter().enumerate() {
        let text = step.to_string().replace('\n', "\n    ");
        write!(f, "\n{word}{}/{of} {text}", i + 1)?;
    }
    Ok(())
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rendered::Http {
                target,
                method,
                path,
                body,
            } => {
                write!(f, "http {target}: {method} {path}")?;
                match body {
                    Some(b) => write!(f, "\nbody: {b}"),
                    None => Ok(()),
                }
            }
            Rendered::Redis { target, plan } => match plan {
                RedisPlan::Command { argv } => write!(f, "redis {target}: {argv:?}"),
                RedisPlan::Scan { pattern, limit } => {
                    write!(f, "redis {target}: SCAN MATCH {pattern:?} (at most {limit} keys)")
                }
                RedisPlan::DeleteMatching { pattern } => {
                    write!(f, "redis {target}: SCAN MATCH {pattern:?}, UNLINK in batches")
                }
            },
            Rendered::Sql {
                target,
                query,
                params,
                transaction,
            } => {
                let outside = if *transaction {
                    ""
                } else {
                    " (outside a transaction)"
                };
                write!(f, "sql {target}{outside}:\n{}", query.trim())?;
                for (i, p) in params.iter().enumerate() {
                    match p {
                        Some(v) => write!(f, "\n${} = {v:?}", i + 1)?,
                        None => write!(f, "\n${} = NULL", i + 1)?,
                    }
                }
                Ok(())
            }
            Rendered::Process { argv, env, cwd, .. } => {
                write!(f, "process: {argv:?}")?;
                if !env.is_empty() {
                    write!(f, "\nenv: {env:?}")?;
                }
                if let Some(dir) = cwd {
                    write!(f, "\ncwd: {dir:?}")?;
                }
                Ok(())
            }
            Rendered::Health { checks } => {
                write!(f, "health:")?;
                for (component, target, path) in checks {
                    write!(f, "\n{component}: {target} GET {path}")?;
                }
                Ok(())
            }
            Rendered::Summarize { of, how } => {
                write!(f, "{of}")?;
                for line in how {
                    write!(f, "\nthen in the bot: {line}")?;
                }
                Ok(())
            }
            Rendered::Link { target, path } => {
                write!(f, "internal: a link to {target} {path} (nothing is sent)")
            }
            Rendered::Maintenance { what } => write!(f, "internal: {what} (opsbot's own; nothing is sent)"),
            Rendered::Confirm { text, within } => write!(
                f,
                "waits for a person to confirm in the thread within {}: {text}",
                crate::duration::format(*within)
            ),
            Rendered::Each { of } => {
                let text = of.to_string().replace('\n', "\n    ");
                write!(f, "for each previewed item, every one tried:\n    {text}")
            }
            Rendered::Seq { steps, finally } => {
                let of = steps.len();
                write!(f, "seq of {of} steps, in order, stopping at the first failure:")?;
                write_steps(f, steps, "")?;
                if !finally.is_empty() {
                    write!(
                        f,
                        "\nfinally, whether those succeeded or failed, every one tried:"
                    )?;
                    write_steps(f, finally, "finally ")?;
                }
                Ok(())
            }
        }
    }
}
