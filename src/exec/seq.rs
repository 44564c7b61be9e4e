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
//!
//! A guided step (`internal.confirm`) stops the seq before it, as a success
//! carrying [`Effect::Pause`] (what to confirm, within how long), the steps
//! before it reported as usual and no finally step run (the seq has not
//! ended); [`Executor::resume`] runs the steps after it once a person has
//! confirmed. The executor keeps no state between the two: whoever resumes
//! says after which step.

use super::render::render_seq;
use super::{truncate, Effect, ExecError, ExecOutput, Executor, Limits, Rendered, SeqLines};
use crate::catalog::{Action, ConfirmStep, InternalAction, Seq, Step, Target};
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
        self.run_seq_from(seq, targets, args, 0).await
    }

    /// Runs a guided seq on from the step after its step `after` (numbered
    /// from 1), which must be a guided step: what a person confirmed. As
    /// [`Executor::execute`] runs it (every step checked again first), with
    /// step numbers counted from the seq's start and only the steps run now
    /// reported; `{run.ts}` is the first run's when `args` still holds it.
    pub async fn resume(
        &self,
        action: &Action,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        after: usize,
    ) -> Result<ExecOutput, ExecError> {
        let confirmed = match action {
            Action::Seq(seq) => after
                .checked_sub(1)
                .and_then(|i| seq.steps.get(i))
                .is_some_and(|s| s.action.is_confirm()),
            _ => false,
        };
        if !confirmed {
            return Err(ExecError::Invalid {
                target: None,
                message: format!("step {after} is no confirmation step of this seq: nothing to resume"),
            });
        }
        self.execute_from(action, targets, args, after).await
    }

    /// [`Executor::run_seq`] from the step at index `start` (0: all of it).
    pub(super) async fn run_seq_from(
        &self,
        seq: &Seq,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        start: usize,
    ) -> Result<ExecOutput, ExecError> {
        let of = seq.steps.len();
        let (labels, finally_labels) = check_steps(seq, targets, args, &self.limits)?;
        let started = Instant::now();
        let budget = (self.limits.output_chars / (of + seq.finally.len()).max(1)).max(200);
        let mut main = Ran::default();
        let mut failure = None;
        for (i, step) in seq.steps.iter().enumerate().skip(start) {
            if let Action::Internal(InternalAction::Confirm(c)) = &step.action {
                return pause(main, (i + 1, of), c, args);
            }
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
        let which = match start {
            0 => format!("{of} of {of} step{}", if of == 1 { "" } else { "s" }),
            _ => format!("steps {}–{of} of {of}", start + 1),
        };
        Ok(ExecOutput {
            summary: format!(
                "seq: {which} succeeded{cleaned} in {} ms",
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

/// The result of a seq stopped before its guided step `step` of `of`: what
/// ran before it, and the pause (its text with `args` filled in).
fn pause(
    mut ran: Ran,
    (step, of): (usize, usize),
    c: &ConfirmStep,
    args: &BTreeMap<String, String>,
) -> Result<ExecOutput, ExecError> {
    let text = super::internal::confirm_text(c, args)?;
    let within = crate::duration::format(c.within);
    let line = format!("⏸ {step}/{of} waits for a confirmation within {within}: {text}");
    let before = ran.lines.join("\n");
    ran.texts.push(line.clone());
    ran.lines.push(line);
    ran.fields.insert("paused_at".into(), Value::from(step));
    ran.fields
        .insert("steps".into(), Value::String(ran.lines.join("\n")));
    ran.effects.push(Effect::Pause {
        step,
        of,
        text,
        within: c.within,
        ran: before,
    });
    Ok(ExecOutput {
        summary: format!("seq: paused at step {step} of {of}, waiting for a confirmation"),
        text: ran.texts.join("\n"),
        fields: Value::Object(ran.fields),
        effects: ran.effects,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TargetKind;
    use serde::Deserialize;
    use std::collections::HashMap;
    use std::time::Duration;

    /// An action as a catalog file writes it (`action = …`).
    fn action(toml_text: &str) -> Action {
        #[derive(Deserialize)]
        struct Holder {
            action: Action,
        }
        toml::from_str::<Holder>(&format!("action = {toml_text}"))
            .expect("an action")
            .action
    }

    fn targets() -> BTreeMap<String, Target> {
        let t = Target {
            name: "api".into(),
            kind: TargetKind::Http,
            url: "http://app.internal".into(),
            timeout: None,
            headers: BTreeMap::new(),
            key_prefixes: Vec::new(),
            location: None,
        };
        [("api".to_string(), t)].into()
    }

    fn args() -> BTreeMap<String, String> {
        [("db".to_string(), "standby-2".to_string())].into()
    }

    fn executor() -> Executor {
        Executor::new(Limits::default(), vec![], HashMap::new())
    }

    /// Links are steps without I/O: what ran shows in the lines.
    const GUIDED: &str = r#"{ seq = [
      { internal = { link = { target = "api", path = "/stop" } } },
      { internal = { confirm = { text = "promote {db}", within = "1h" } } },
      { internal = { link = { target = "api", path = "/strings" } } },
      { internal = { confirm = { text = "restart the app", within = "30m" } } },
      { internal = { link = { target = "api", path = "/verify" } } },
    ] }"#;

    fn pause_of(out: &ExecOutput) -> (usize, usize, String, Duration) {
        match out.effects.last() {
            Some(Effect::Pause {
                step,
                of,
                text,
                within,
                ..
            }) => (*step, *of, text.clone(), *within),
            other => panic!("no pause: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_guided_seq_stops_at_each_confirmation_and_resumes_after_it() {
        let (a, t, e) = (action(GUIDED), targets(), executor());
        let first = e.execute(&a, &t, &args()).await.expect("paused, not failed");
        assert_eq!(
            pause_of(&first),
            (2, 5, "promote standby-2".into(), Duration::from_secs(3600))
        );
        assert_eq!(
            first.summary,
            "seq: paused at step 2 of 5, waiting for a confirmation"
        );
        assert_eq!(
            first.fields["steps"],
            "✓ 1/5 link to api: http://app.internal/stop\n⏸ 2/5 waits for a confirmation within 1h: promote standby-2"
        );
        assert_eq!(first.fields["paused_at"], 2);

        let second = e.resume(&a, &t, &args(), 2).await.expect("paused again");
        assert_eq!(pause_of(&second).0, 4);
        assert_eq!(
            second.fields["steps"],
            "✓ 3/5 link to api: http://app.internal/strings\n⏸ 4/5 waits for a confirmation within 30m: restart the app"
        );
        assert_eq!(second.effects.len(), 1, "only this stretch's effects");

        let last = e.resume(&a, &t, &args(), 4).await.expect("done");
        assert!(last.effects.is_empty());
        assert!(
            last.summary.starts_with("seq: steps 5–5 of 5 succeeded in "),
            "{}",
            last.summary
        );
        assert_eq!(
            last.fields["steps"],
            "✓ 5/5 link to api: http://app.internal/verify"
        );
    }

    #[tokio::test]
    async fn only_a_confirmation_step_of_the_seq_is_resumed_after() {
        let (a, t, e) = (action(GUIDED), targets(), executor());
        for after in [0, 1, 3, 5, 6] {
            let err = e.resume(&a, &t, &args(), after).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("step {after} is no confirmation step of this seq: nothing to resume")
            );
        }
        let plain = action(r#"{ internal = { link = { target = "api", path = "/x" } } }"#);
        assert!(e.resume(&plain, &t, &args(), 1).await.is_err());
        // Standing alone, nobody could resume after it.
        let alone = action(r#"{ internal = { confirm = { text = "x", within = "1h" } } }"#);
        let err = e.execute(&alone, &t, &args()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "a confirmation step refused: it only runs as a step of a command's own seq"
        );
    }

    #[tokio::test]
    async fn a_refused_step_after_a_pause_stops_the_seq_before_anything_runs() {
        // Every step is checked before the first one runs, resumed or not.
        let a = action(
            r#"{ seq = [
              { internal = { confirm = { text = "go", within = "1h" } } },
              { internal = { link = { target = "nope", path = "/x" } } },
            ] }"#,
        );
        let e = executor();
        let err = e.execute(&a, &targets(), &args()).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("step 2 of 2 refused, nothing was run"),
            "{err}"
        );
        let err = e.resume(&a, &targets(), &args(), 1).await.unwrap_err();
        assert!(err.to_string().contains("target nope is not defined"), "{err}");
    }

    #[test]
    fn a_confirmation_step_renders_what_a_person_confirms() {
        let a = action(GUIDED);
        let shown = super::super::render(&a, &targets(), &args()).unwrap().to_string();
        assert!(
            shown.contains("waits for a person to confirm in the thread within 1h: promote standby-2"),
            "{shown}"
        );
    }
}
