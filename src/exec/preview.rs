//! Previews: a command's read-only action run when its approval is
//! requested, turned into a [`Previewed`] (count, samples, item set); and
//! the execution that receives it.
//!
//! What each kind of preview yields:
//! - redis `scan`: the keys found (up to the scan's `limit`) are the count,
//!   the samples and the item set;
//! - redis command: an integer reply is the count; an array reply is the
//!   count (its first element) and samples (the rest);
//! - sql (run in a read-only transaction on Postgres): the rows are the
//!   count (or the integer in column `count`), the column `items` the item
//!   set, `show` (or every column) the samples, the first row the values;
//! - http GET: the JSON body's `count` path, else the length of the array at
//!   `items` (only its elements whose fields hold the values `only` names),
//!   else 1; the `show` fields (top level) are a sample and values;
//! - process (a read-only program, checked at load): each non-empty stdout
//!   line is a row, its tab-separated fields named by `columns` (one column
//!   `line` when none are named), read as sql rows are; at most
//!   [`PROCESS_ROWS`] lines and [`PROCESS_BYTES`] bytes are bound (then the
//!   preview is incomplete: only those are touched).
//!
//! At execution the previewed values are template values (`preview.*`), a
//! Redis `delete_matching` deletes only the previewed keys (still matching
//! its pattern) and an sql action bound to `{preview.items}` reports how
//! many previewed items it touched and how many no longer matched. Any
//! other action over `{preview.items}` (a process, or a seq holding one) or
//! an `each` (run once per item) is
//! given only the previewed items that still match: the preview runs again
//! first, and the items it no longer finds are left out (none left: the
//! action does not run).

use super::{ExecError, ExecOutput, Executor};
use crate::catalog::{Action, Preview, Target};
use crate::preview::{Previewed, ITEMS};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Longest sample shown on a card, in chars.
const SAMPLE_CHARS: usize = 120;

/// Most lines of a process preview read as rows (and so bound).
pub const PROCESS_ROWS: usize = 500;
/// Most bytes of the lines of a process preview read as rows: its items
/// must fit one argument of the remote command of an SSH host.
pub const PROCESS_BYTES: usize = 64 * 1024;

/// A preview and what it found, as execution receives them.
#[derive(Debug, Clone, Copy)]
pub struct Bound<'a> {
    /// The command's preview definition (run again to narrow the items).
    pub preview: &'a Preview,
    pub found: &'a Previewed,
}

impl Executor {
    /// Runs `p`'s read action with `args` and says what it found. Like
    /// every output, what it read is redacted first.
    pub async fn preview(
        &self,
        p: &Preview,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<Previewed, ExecError> {
        self.learn_header_secrets(targets);
        let out = match &p.action {
            Action::Redis(a) => self.run_redis(a, targets, args).await,
            Action::Sql(a) => self.run_sql_as(a, targets, args, true).await,
            Action::Http(a) => self.run_http(a, targets, args).await,
            // Rows before `finish`, which cuts the output to chat size.
            Action::Process(a) => self
                .run_process(a, targets, &super::with_run_ts(args, self.clock.now_ms()))
                .await
                .map(|out| line_rows(out, &p.line_columns())),
            other => Err(ExecError::Invalid {
                target: None,
                message: format!("a preview cannot be a {} action", other.kind()),
            }),
        };
        let out = self.finish(out)?;
        let mut found = from_fields(p, &out.fields)?;
        for s in &mut found.samples {
            *s = super::one_line(s, SAMPLE_CHARS);
        }
        Ok(found)
    }

    /// Runs `action` as [`Executor::execute`] does, given what its preview
    /// found: `{preview.*}` values filled in, a Redis `delete_matching`
    /// limited to the previewed keys, an sql action bound to the previewed
    /// items reporting touched against skipped.
    pub async fn execute_previewed(
        &self,
        action: &Action,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        preview: Option<Bound<'_>>,
    ) -> Result<ExecOutput, ExecError> {
        let Some(Bound {
            preview: def,
            found: p,
        }) = preview
        else {
            return self.execute(action, targets, args).await;
        };
        if let (Some(items), false) = (&p.items, matches!(action, Action::Sql(_))) {
            if uses_items(action) || is_each(action) {
                return self
                    .execute_still_matching(action, targets, args, def, p, items)
                    .await;
            }
        }
        let mut all = args.clone();
        all.extend(p.args());
        match (action, &p.items) {
            (Action::Redis(a), Some(items)) if a.delete_matching.is_some() => {
                self.learn_header_secrets(targets);
                let r = self
                    .run_redis_previewed(a, targets, &all, items, p.complete)
                    .await;
                self.finish(r)
            }
            (Action::Sql(_), Some(items)) if uses_items(action) => {
                let out = self.execute(action, targets, &all).await?;
                let touched = out.fields["row_count"].as_u64().unwrap_or(0) as usize;
                Ok(touched_report(out, touched, items.len(), &p.what))
            }
            _ => self.execute(action, targets, &all).await,
        }
    }
}

impl Executor {
    /// Runs `action` over the previewed `items` that the preview, run again,
    /// still finds (in the previewed order); reports how many were handed
    /// over and how many no longer matched. None left: nothing runs.
    async fn execute_still_matching(
        &self,
        action: &Action,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        def: &Preview,
        found: &Previewed,
        items: &[String],
    ) -> Result<ExecOutput, ExecError> {
        let now = self.preview(def, targets, args).await?;
        let current: BTreeSet<&str> = now.items.iter().flatten().map(String::as_str).collect();
        let still: Vec<String> = items
            .iter()
            .filter(|i| current.contains(i.as_str()))
            .cloned()
            .collect();
        let handed = still.len();
        if still.is_empty() {
            let out = ExecOutput {
                summary: "nothing run".into(),
                text: String::new(),
                fields: json!({}),
                effects: Vec::new(),
            };
            return Ok(touched_report(out, 0, items.len(), &found.what));
        }
        let mut all = args.clone();
        all.extend(found.narrowed_to(still).args());
        let out = self.execute(action, targets, &all).await?;
        Ok(touched_report(out, handed, items.len(), &found.what))
    }
}

/// A process preview's output as sql-like `fields`: `rows` (one object per
/// non-empty stdout line, its tab-separated fields named by `columns`; a
/// line with more fields keeps the rest in the last column) and `complete`
/// (false when [`PROCESS_ROWS`] or [`PROCESS_BYTES`] cut the lines). Pure.
pub fn line_rows(out: ExecOutput, columns: &[&str]) -> ExecOutput {
    let stdout = out.fields["stdout"].as_str().unwrap_or_default();
    let (mut rows, mut bytes, mut complete) = (Vec::new(), 0, true);
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        bytes += line.len() + 1;
        if rows.len() == PROCESS_ROWS || bytes > PROCESS_BYTES {
            complete = false;
            break;
        }
        let fields = line.splitn(columns.len().max(1), '\t');
        let row: serde_json::Map<String, Value> = columns
            .iter()
            .zip(fields)
            .map(|(c, f)| (c.to_string(), Value::String(f.to_string())))
            .collect();
        rows.push(Value::Object(row));
    }
    let row_count = rows.len();
    ExecOutput {
        summary: out.summary,
        text: out.text,
        fields: json!({ "rows": rows, "row_count": row_count, "complete": complete }),
        effects: out.effects,
    }
}

/// An `each` action, or a seq holding one: it runs once per item.
fn is_each(action: &Action) -> bool {
    match action {
        Action::Each(_) => true,
        Action::Seq(seq) => seq.all().any(|s| is_each(&s.action)),
        _ => false,
    }
}

fn uses_items(action: &Action) -> bool {
    action
        .templates()
        .iter()
        .any(|t| crate::template::placeholders(t).contains(&ITEMS))
}

/// A result over the previewed items: `touched` of `previewed` (an sql
/// action's rows, or the items still matching that a process was given).
fn touched_report(mut out: ExecOutput, touched: usize, previewed: usize, what: &str) -> ExecOutput {
    let skipped = previewed.saturating_sub(touched);
    out.summary = format!(
        "{} · {touched} of {previewed} previewed {what} touched · {skipped} no longer matched (untouched)",
        out.summary
    );
    if let Value::Object(f) = &mut out.fields {
        f.insert("previewed".into(), previewed.into());
        f.insert("touched".into(), touched.into());
        f.insert("skipped".into(), skipped.into());
    }
    out
}

/// A preview's result from its action's `fields`. Pure.
pub fn from_fields(p: &Preview, fields: &Value) -> Result<Previewed, ExecError> {
    let bad = |message: String| ExecError::Invalid {
        target: p.action.targets().first().map(|(t, _)| t.to_string()),
        message: format!("the preview's answer: {message}"),
    };
    let mut out = Previewed {
        what: p.what.clone(),
        count: 0,
        complete: true,
        samples: Vec::new(),
        items: None,
        listed: false,
        values: BTreeMap::new(),
    };
    match &p.action {
        Action::Redis(r) if r.scan.is_some() => {
            let keys: Vec<String> = fields["keys"]
                .as_array()
                .map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect())
                .unwrap_or_default();
            out.count = keys.len() as u64;
            out.complete = fields["complete"].as_bool().unwrap_or(true);
            out.samples = keys.iter().take(p.samples).cloned().collect();
            out.items = Some(keys);
            out.listed = true;
        }
        Action::Redis(_) => match &fields["result"] {
            Value::Number(n) => out.count = n.as_u64().unwrap_or(0),
            Value::Array(a) => {
                out.count = a
                    .first()
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("an array reply must start with the count (an integer)".into()))?;
                out.samples = a.iter().skip(1).take(p.samples).map(text).collect();
            }
            other => return Err(bad(format!("expected a count, got {other}"))),
        },
        Action::Sql(_) | Action::Process(_) => {
            let rows = fields["rows"].as_array().cloned().unwrap_or_default();
            out.complete = fields["complete"].as_bool().unwrap_or(true);
            out.count = match &p.count {
                Some(col) => {
                    out.complete = true;
                    rows.first()
                        .and_then(|r| r.get(col))
                        .and_then(as_count)
                        .ok_or_else(|| bad(format!("no integer column `{col}` in the first row")))?
                }
                None => {
                    out.listed = true;
                    rows.len() as u64
                }
            };
            if let Some(col) = &p.items {
                let ids = rows
                    .iter()
                    .map(|r| r.get(col).filter(|v| !v.is_null()).map(text))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| bad(format!("a row has no value in the items column `{col}`")))?;
                out.items = Some(ids);
            }
            out.samples = rows
                .iter()
                .take(p.samples)
                .map(|r| match bare_line(p, r) {
                    Some(line) => line,
                    None => sample(r, &p.show),
                })
                .collect();
            if let Some(Value::Object(first)) = rows.first() {
                out.values = first.iter().map(|(k, v)| (k.clone(), text(v))).collect();
            }
        }
        Action::Http(_) => {
            let ids = match &p.items {
                Some(path) => Some(
                    at(fields, path)
                        .and_then(Value::as_array)
                        .ok_or_else(|| bad(format!("no array at `{path}`")))?
                        .iter()
                        .filter(|v| kept(p, v))
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
                None => None,
            };
            out.count = match (&p.count, &ids) {
                (Some(path), _) => at(fields, path)
                    .and_then(as_count)
                    .ok_or_else(|| bad(format!("no count at `{path}`")))?,
                (None, Some(ids)) => ids.len() as u64,
                (None, None) => 1,
            };
            match &ids {
                Some(ids) => {
                    out.listed = p.count.is_none();
                    out.samples = ids.iter().take(p.samples).map(|v| sample(v, &p.show)).collect();
                    out.items = Some(ids.iter().map(|v| text(v.get("id").unwrap_or(v))).collect());
                }
                None if !p.show.is_empty() => out.samples = vec![sample(fields, &p.show)],
                None => {}
            }
            for name in &p.show {
                if let Some(v) = at(fields, name) {
                    out.values.insert(name.clone(), text(v));
                }
            }
        }
        other => return Err(bad(format!("a preview cannot be a {} action", other.kind()))),
    }
    Ok(out)
}

/// A process preview's line shown as it is: its lines have no named
/// columns and no `show`.
fn bare_line(p: &Preview, row: &Value) -> Option<String> {
    let plain = matches!(p.action, Action::Process(_)) && p.columns.is_empty() && p.show.is_empty();
    plain.then(|| row.get(crate::catalog::LINE_COLUMN).map(text))?
}

/// Whether an http preview keeps the array element `v`: each field `only`
/// names holds one of its values.
fn kept(p: &Preview, v: &Value) -> bool {
    p.only
        .iter()
        .all(|(field, values)| at(v, field).is_some_and(|x| values.contains(&text(x))))
}

/// The value at a dotted path (`data.queued`).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// A count: a non-negative integer, or a string holding one (Postgres
/// `count(*)` through a text cast).
fn as_count(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// One row or object as a sample: `pid 4242 · age 00:06:01 · query SELECT …`
/// (the `show` fields, else every field); a scalar as itself.
fn sample(v: &Value, show: &[String]) -> String {
    let Value::Object(o) = v else {
        return text(v);
    };
    let fields: Vec<String> = if show.is_empty() {
        o.iter().map(|(k, v)| format!("{k} {}", text(v))).collect()
    } else {
        show.iter()
            .filter_map(|k| at(v, k).map(|x| format!("{k} {}", text(x))))
            .collect()
    };
    fields.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn preview(toml_action: &str, extra: &str) -> Preview {
        toml::from_str(&format!("what = \"things\"\naction = {toml_action}\n{extra}")).unwrap()
    }

    #[test]
    fn a_scan_binds_its_keys_and_shows_the_first_samples() {
        let p = preview(
            r#"{ redis = { target = "r", scan = "gemini:*" } }"#,
            "samples = 2",
        );
        let found = from_fields(
            &p,
            &json!({"keys": ["gemini:a", "gemini:b", "gemini:c"], "count": 3, "complete": true}),
        )
        .unwrap();
        assert_eq!(found.count, 3);
        assert_eq!(found.samples, ["gemini:a", "gemini:b"]);
        assert_eq!(found.items.unwrap().len(), 3);
    }

    #[test]
    fn sql_rows_give_items_samples_and_first_row_values() {
        let p = preview(
            r#"{ sql = { target = "d", query = "SELECT 1" } }"#,
            "items = \"pid\"\nshow = [\"pid\", \"age\"]",
        );
        let fields = json!({"rows": [{"pid": 11, "age": "00:06", "query": "x"}, {"pid": 12, "age": "00:09", "query": "y"}], "row_count": 2, "complete": true});
        let found = from_fields(&p, &fields).unwrap();
        assert_eq!(found.count, 2);
        assert_eq!(found.items.unwrap(), ["11", "12"]);
        assert_eq!(found.samples, ["pid 11 · age 00:06", "pid 12 · age 00:09"]);
        assert_eq!(found.values["query"], "x");
    }

    #[test]
    fn a_count_column_and_a_missing_items_column() {
        let p = preview(
            r#"{ sql = { target = "d", query = "SELECT 1" } }"#,
            "count = \"n\"",
        );
        let found = from_fields(
            &p,
            &json!({"rows": [{"n": "7", "cutoff": "2026-01-01"}], "complete": true}),
        )
        .unwrap();
        assert_eq!((found.count, found.items), (7, None));
        assert_eq!(found.values["cutoff"], "2026-01-01");
        let p = preview(
            r#"{ sql = { target = "d", query = "SELECT 1" } }"#,
            "items = \"pid\"",
        );
        let e = from_fields(&p, &json!({"rows": [{"other": 1}]})).unwrap_err();
        assert!(e.to_string().contains("items column `pid`"), "{e}");
    }

    #[test]
    fn redis_commands_answer_a_count_or_a_count_with_samples() {
        let p = preview(r#"{ redis = { target = "r", command = ["DBSIZE"] } }"#, "");
        assert_eq!(from_fields(&p, &json!({"result": 42})).unwrap().count, 42);
        let found = from_fields(&p, &json!({"result": [3, "type zset", "bull keys: yes"]})).unwrap();
        assert_eq!((found.count, found.samples.len()), (3, 2));
        assert!(from_fields(&p, &json!({"result": "OK"})).is_err());
    }

    #[test]
    fn http_counts_at_a_path_or_finds_one_object() {
        let p = preview(
            r#"{ http = { target = "a", path = "/x" } }"#,
            "count = \"data.queued\"",
        );
        assert_eq!(
            from_fields(&p, &json!({"data": {"queued": 14}})).unwrap().count,
            14
        );
        let p = preview(
            r#"{ http = { target = "a", path = "/x" } }"#,
            "show = [\"state\", \"attempts\"]",
        );
        let found = from_fields(&p, &json!({"state": "active", "attempts": 3})).unwrap();
        assert_eq!(
            (found.count, found.samples[0].as_str()),
            (1, "state active · attempts 3")
        );
    }

    fn stdout(text: &str) -> ExecOutput {
        ExecOutput {
            summary: "exit 0".into(),
            text: text.into(),
            fields: json!({ "exit_code": 0, "stdout": text, "stderr": "" }),
            effects: Vec::new(),
        }
    }

    #[test]
    fn process_lines_are_rows_of_named_tab_separated_columns() {
        let p = preview(
            r#"{ process = { argv = ["find", "/d"] } }"#,
            "items = \"path\"\ncolumns = [\"time\", \"path\"]\nshow = [\"path\", \"time\"]",
        );
        let out = line_rows(
            stdout("12:00\t/d/a b\n\n  \n13:00\t/d/c\tmore\n"),
            &p.line_columns(),
        );
        assert_eq!(out.fields["row_count"], 2);
        let found = from_fields(&p, &out.fields).unwrap();
        assert_eq!(found.items.unwrap(), ["/d/a b", "/d/c\tmore"]);
        assert_eq!(found.samples[0], "path /d/a b · time 12:00");
        assert_eq!(found.values["time"], "12:00");
        let plain = preview(r#"{ process = { argv = ["find", "/d"] } }"#, "items = \"line\"");
        let out = line_rows(stdout("/d/a\n/d/b\n"), &plain.line_columns());
        let found = from_fields(&plain, &out.fields).unwrap();
        assert_eq!(
            (found.count, found.samples.clone()),
            (2, vec!["/d/a".to_string(), "/d/b".into()])
        );
        assert!(found.listed && found.complete);
    }

    #[test]
    fn process_lines_past_the_bounds_make_the_preview_incomplete() {
        let p = preview(r#"{ process = { argv = ["find", "/d"] } }"#, "items = \"line\"");
        let many: String = (0..PROCESS_ROWS + 3).map(|i| format!("/d/{i}\n")).collect();
        let found = from_fields(&p, &line_rows(stdout(&many), &p.line_columns()).fields).unwrap();
        assert_eq!((found.count as usize, found.complete), (PROCESS_ROWS, false));
        let long = format!("{}\n", "x".repeat(PROCESS_BYTES / 2));
        let found = from_fields(&p, &line_rows(stdout(&long.repeat(3)), &p.line_columns()).fields).unwrap();
        assert_eq!((found.count, found.complete), (1, false));
        assert!(
            found.headline().contains("only these 1 are touched"),
            "{}",
            found.headline()
        );
    }

    #[test]
    fn an_http_preview_keeps_only_the_elements_it_names() {
        let p = preview(
            r#"{ http = { target = "a", path = "/jobs" } }"#,
            "items = \"jobs\"\nonly = { state = [\"running\", \"queued\"] }",
        );
        let body = json!({"jobs": [
            {"id": "a", "state": "running"}, {"id": "b", "state": "completed"},
            {"id": "c", "state": "queued"}, {"id": "d"}
        ]});
        let found = from_fields(&p, &body).unwrap();
        assert_eq!(found.items.unwrap(), ["a", "c"]);
        assert_eq!(found.count, 2);
    }

    #[test]
    fn touched_against_skipped() {
        let out = ExecOutput {
            summary: "sql: 3 rows".into(),
            text: String::new(),
            fields: json!({"row_count": 3}),
            effects: Vec::new(),
        };
        let r = touched_report(out, 3, 4, "queries");
        assert!(r
            .summary
            .ends_with("3 of 4 previewed queries touched · 1 no longer matched (untouched)"));
        assert_eq!(r.fields["skipped"], 1);
    }
}
