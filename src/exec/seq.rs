//! `seq` actions: ordered steps, each another action.
//!
//! Every step is rendered (and so checked: targets, path segments, Redis
//! refusals, missing arguments, process programs on the allow-list) before
//! the first one runs, so a value that one
//! step would refuse stops the whole seq while nothing has happened yet. Then
//! the steps run one after another, each with its own executor and deadline,
//! and the first failure stops the seq: the error says which step failed, what
//! ran before it and what did not run.

use super::render::render_steps;
use super::{truncate, ExecError, ExecOutput, Executor, Limits, Rendered};
use crate::catalog::{Action, Step, Target};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;

impl Executor {
    /// Runs `steps` in order. `fields` holds each step's fields under its
    /// number (`{response.1.status}`) and `steps`, one line per step.
    pub(super) async fn run_seq(
        &self,
        steps: &[Step],
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        let of = steps.len();
        let labels = check_steps(steps, targets, args, &self.limits)?;
        let started = Instant::now();
        let budget = (self.limits.output_chars / of.max(1)).max(200);
        let (mut lines, mut texts, mut fields) = (Vec::new(), Vec::new(), Map::new());
        let mut effects = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            // Boxed: a step may itself be a seq.
            match Box::pin(self.execute(&step.action, targets, args)).await {
                Ok(out) => {
                    let line = format!("✓ {}/{of} {}", i + 1, out.summary);
                    texts.push(if out.text.is_empty() {
                        line.clone()
                    } else {
                        format!("{line}\n{}", truncate(&out.text, budget))
                    });
                    lines.push(line);
                    fields.insert((i + 1).to_string(), out.fields);
                    effects.extend(out.effects);
                }
                Err(error) => {
                    return Err(ExecError::Step {
                        step: i + 1,
                        of,
                        what: labels[i].clone(),
                        source: Box::new(error),
                        ran: lines,
                        not_run: labels[i + 1..].to_vec(),
                        effects,
                    })
                }
            }
        }
        fields.insert("steps".into(), Value::String(lines.join("\n")));
        Ok(ExecOutput {
            summary: format!(
                "seq: {of} of {of} step{} succeeded in {} ms",
                if of == 1 { "" } else { "s" },
                started.elapsed().as_millis()
            ),
            text: texts.join("\n"),
            fields: Value::Object(fields),
            effects,
        })
    }
}

/// Renders every step (the checks execution would make) and refuses a
/// process step, at any depth, whose program its profile may not run; one label
/// per step.
fn check_steps(
    steps: &[Step],
    targets: &BTreeMap<String, Target>,
    args: &BTreeMap<String, String>,
    limits: &Limits,
) -> Result<Vec<String>, ExecError> {
    let rendered = render_steps(steps, targets, args)?;
    refuse_disallowed(&rendered, limits)?;
    Ok(steps
        .iter()
        .zip(&rendered)
        .map(|(s, r)| label(&s.action, r))
        .collect())
}

/// The first process step whose program is not on its profile's allow-list,
/// as the refusal of that step.
fn refuse_disallowed(rendered: &[Rendered], limits: &Limits) -> Result<(), ExecError> {
    let of = rendered.len();
    for (i, r) in rendered.iter().enumerate() {
        allowed(r, limits).map_err(|e| e.in_step(i + 1, of))?;
    }
    Ok(())
}

/// Refuses a process (in `r`, or summarized by it, or a step of it) whose
/// program its profile may not run.
fn allowed(r: &Rendered, limits: &Limits) -> Result<(), ExecError> {
    match r {
        Rendered::Process { profile, program, .. } if !limits.allows(profile, program) => {
            Err(ExecError::NotAllowed {
                program: program.clone(),
            })
        }
        Rendered::Seq { steps } => refuse_disallowed(steps, limits),
        Rendered::Summarize { of, .. } => allowed(of, limits),
        _ => Ok(()),
    }
}

/// Longest SQL text in a step's label.
const LABEL_SQL_CHARS: usize = 60;

/// One line naming what a step does: `http cap_api: GET /api/x`,
/// `sql db: SELECT count(*) FROM …`.
fn label(action: &Action, rendered: &Rendered) -> String {
    match (action, rendered) {
        (Action::Seq(steps), _) => format!("seq of {} steps", steps.len()),
        (Action::Health(h), _) => format!("health: {} checks", h.checks.len()),
        (_, Rendered::Sql { target, query, .. }) => {
            let words = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut short: String = words.chars().take(LABEL_SQL_CHARS).collect();
            if short.len() < words.len() {
                short.push('…');
            }
            format!("sql {target}: {short}")
        }
        _ => rendered
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The text of [`ExecError::Step`]: the failure, then every step's outcome.
pub(super) fn step_report(
    step: usize,
    of: usize,
    what: &str,
    error: &ExecError,
    ran: &[String],
    not_run: &[String],
) -> String {
    let mut out = format!("step {step} of {of} failed");
    match not_run.len() {
        0 => {}
        1 => out.push_str(&format!("; step {of} did not run")),
        _ => out.push_str(&format!("; steps {}–{of} did not run", step + 1)),
    }
    for line in ran {
        out.push('\n');
        out.push_str(line);
    }
    // A nested seq's report (or a multi-line body) stays under its step.
    let error = error.to_string().replace('\n', "\n    ");
    out.push_str(&format!("\n✗ {step}/{of} {what}: {error}"));
    for (i, what) in not_run.iter().enumerate() {
        out.push_str(&format!("\n· {}/{of} not run: {what}", step + 1 + i));
    }
    out
}

/// `step 2 of 3 › step 1 of 2`: where a refused step sits in nested seqs.
pub(super) fn step_path(path: &[(usize, usize)]) -> String {
    let parts: Vec<String> = path.iter().map(|(s, of)| format!("step {s} of {of}")).collect();
    parts.join(" › ")
}
