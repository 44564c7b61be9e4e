//! `seq` actions: ordered steps, each another action.
//!
//! Every step is rendered (and so checked: targets, path segments, Redis
//! refusals, missing arguments, process programs on the allow-list) before
//! the first one runs, so a value that one
//! step would refuse stops the whole seq while nothing has happened yet. Then
//! the steps run one after another, each with its own executor and deadline,
//! and the first failure stops the seq: the error says which step failed, what
//! ran before it and what did not run. The `finally` steps run after the
//! steps whether they succeeded or failed (every one of them, even after one
//! failed): the result reports the first failure, then the cleanup's outcome.

use super::render::render_seq;
use super::{truncate, Effect, ExecError, ExecOutput, Executor, Limits, Rendered, SeqLines};
use crate::catalog::{Action, Seq, Step, Target};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;

impl Executor {
    /// Runs the steps of `seq` in order, then its `finally` steps (each one,
    /// whatever happened before). `fields` holds each step's fields under its
    /// number (`{response.1.status}`), the finally steps' under `finally`,
    /// and `steps`, one line per step.
    pub(super) async fn run_seq(
        &self,
        seq: &Seq,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        let of = seq.steps.len();
        let (labels, finally_labels) = check_steps(seq, targets, args, &self.limits)?;
        let started = Instant::now();
        let budget = (self.limits.output_chars / (of + seq.finally.len()).max(1)).max(200);
        let mut main = Ran::default();
        let mut failure = None;
        for (i, step) in seq.steps.iter().enumerate() {
            // Boxed: a step may itself be a seq.
            match Box::pin(self.execute(&step.action, targets, args)).await {
                Ok(out) => main.push(i + 1, format!("✓ {}/{of} {}", i + 1, out.summary), out, budget),
                Err(error) => {
                    failure = Some((i, error));
                    break;
                }
            }
        }
        let (cleanup, cleanup_failure) = self
            .run_finally(seq, &finally_labels, targets, args, budget)
            .await;
        let mut effects = main.effects;
        effects.extend(cleanup.effects);
        if let Some((i, error)) = failure {
            return Err(ExecError::Step {
                step: i + 1,
                of,
                what: labels[i].clone(),
                source: Box::new(error),
                lines: Box::new(SeqLines {
                    ran: main.lines,
                    not_run: labels[i + 1..].to_vec(),
                    finally: cleanup.lines,
                }),
                effects,
            });
        }
        if let Some((j, error)) = cleanup_failure {
            return Err(ExecError::Finally {
                step: j + 1,
                of: seq.finally.len(),
                source: Box::new(error),
                lines: Box::new(SeqLines {
                    ran: main.lines,
                    not_run: Vec::new(),
                    finally: cleanup.lines,
                }),
                effects,
            });
        }
        let mut fields = main.fields;
        if !seq.finally.is_empty() {
            fields.insert("finally".into(), Value::Object(cleanup.fields));
        }
        let lines = [main.lines, cleanup.lines].concat();
        fields.insert("steps".into(), Value::String(lines.join("\n")));
        let cleaned = match seq.finally.len() {
            0 => String::new(),
            n => format!(", then {n} finally step{}", if n == 1 { "" } else { "s" }),
        };
        Ok(ExecOutput {
            summary: format!(
                "seq: {of} of {of} step{} succeeded{cleaned} in {} ms",
                if of == 1 { "" } else { "s" },
                started.elapsed().as_millis()
            ),
            text: [main.texts, cleanup.texts].concat().join("\n"),
            fields: Value::Object(fields),
            effects,
        })
    }

    /// Runs every `finally` step of `seq`, each whatever the ones before it
    /// did; what ran, and the first failure (its index and error).
    async fn run_finally(
        &self,
        seq: &Seq,
        labels: &[String],
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        budget: usize,
    ) -> (Ran, Option<(usize, ExecError)>) {
        let of = seq.finally.len();
        let mut ran = Ran::default();
        let mut failure = None;
        for (j, step) in seq.finally.iter().enumerate() {
            match Box::pin(self.execute(&step.action, targets, args)).await {
                Ok(out) => ran.push(
                    j + 1,
                    format!("✓ finally {}/{of} {}", j + 1, out.summary),
                    out,
                    budget,
                ),
                Err(error) => {
                    let text = error.to_string().replace('\n', "\n    ");
                    let line = format!("✗ finally {}/{of} {}: {text}", j + 1, labels[j]);
                    ran.texts.push(line.clone());
                    ran.lines.push(line);
                    ran.effects.extend(error.effects().iter().cloned());
                    failure.get_or_insert((j, error));
                }
            }
        }
        (ran, failure)
    }
}

/// What the steps of a seq (or its finally steps) gave, in order.
#[derive(Default)]
struct Ran {
    /// One outcome line per step.
    lines: Vec<String>,
    /// Each line with its step's output (cut to the budget).
    texts: Vec<String>,
    /// Each step's fields under its number.
    fields: Map<String, Value>,
    effects: Vec<Effect>,
}

impl Ran {
    /// Adds the outcome of step `n` (numbered from 1).
    fn push(&mut self, n: usize, line: String, out: ExecOutput, budget: usize) {
        self.texts.push(if out.text.is_empty() {
            line.clone()
        } else {
            format!("{line}\n{}", truncate(&out.text, budget))
        });
        self.lines.push(line);
        self.fields.insert(n.to_string(), out.fields);
        self.effects.extend(out.effects);
    }
}

/// Renders every step (the checks execution would make) and refuses a
/// process step, at any depth, whose program its profile may not run; one label
/// per step.
fn check_steps(
    seq: &Seq,
    targets: &BTreeMap<String, Target>,
    args: &BTreeMap<String, String>,
    limits: &Limits,
) -> Result<(Vec<String>, Vec<String>), ExecError> {
    let (steps, finally) = render_seq(seq, targets, args)?;
    refuse_disallowed(&[steps.as_slice(), finally.as_slice()].concat(), limits)?;
    let labels = |list: &[Step], rendered: &[Rendered]| -> Vec<String> {
        list.iter()
            .zip(rendered)
            .map(|(s, r)| label(&s.action, r))
            .collect()
    };
    Ok((labels(&seq.steps, &steps), labels(&seq.finally, &finally)))
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
        Rendered::Seq { steps, finally } => {
            refuse_disallowed(&[steps.as_slice(), finally.as_slice()].concat(), limits)
        }
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
        (Action::Seq(seq), _) if seq.finally.is_empty() => format!("seq of {} steps", seq.steps.len()),
        (Action::Seq(seq), _) => format!(
            "seq of {} steps and {} finally",
            seq.steps.len(),
            seq.finally.len()
        ),
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
pub(super) fn step_report(step: usize, of: usize, what: &str, error: &ExecError, lines: &SeqLines) -> String {
    let SeqLines {
        ran,
        not_run,
        finally,
    } = lines;
    let mut out = format!("step {step} of {of} failed");
    match not_run.len() {
        0 => {}
        1 => out.push_str(&format!("; step {of} did not run")),
        _ => out.push_str(&format!("; steps {}–{of} did not run", step + 1)),
    }
    if !finally.is_empty() {
        let ok = finally.iter().filter(|l| l.starts_with('✓')).count();
        let n = finally.len();
        out.push_str(&format!(
            "; {ok} of {n} finally step{} succeeded",
            if n == 1 { "" } else { "s" }
        ));
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
    for line in finally {
        out.push('\n');
        out.push_str(line);
    }
    out
}

/// The text of [`ExecError::Finally`]: every step succeeded, then a finally
/// step failed; every step's outcome.
pub(super) fn finally_report(step: usize, of: usize, lines: &SeqLines) -> String {
    let SeqLines { ran, finally, .. } = lines;
    let n = ran.len();
    let mut out = format!(
        "finally step {step} of {of} failed, after {} succeeded",
        if n == 1 {
            "the step".to_string()
        } else {
            format!("all {n} steps")
        }
    );
    for line in ran.iter().chain(finally) {
        out.push('\n');
        out.push_str(line);
    }
    out
}

/// `step 2 of 3 › step 1 of 2`: where a refused step sits in nested seqs.
pub(super) fn step_path(path: &[(usize, usize)]) -> String {
    let parts: Vec<String> = path.iter().map(|(s, of)| format!("step {s} of {of}")).collect();
    parts.join(" › ")
}
