//! Summaries the bot computes over an action's output (`summarize`), as data
//! in the catalog rather than code per command: the lines of a log tail that
//! match a regex, counted and the last few kept; the elements of a JSON array
//! whose field equals a value; average and peak of numeric fields over a
//! series; advice and picks by thresholds over the numbers found. Pure: an
//! output in, an output out.
//!
//! The summary reads the output before it is cut to chat size (the reading
//! caps of each executor still apply: a tail longer than 1 MiB is counted as
//! far as it was read, and the text says how many lines that was).

use super::{ExecError, ExecOutput};
use crate::catalog::{LinesRule, Rule, SelectRule, SeriesRule, Summarize};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;

/// `out` summarized by `s`: its fields become the summary's (`count`,
/// `lines`, `items`, `<field>.avg`, `advice`, `pick`), its text the summary
/// followed by the original text when nothing reshaped it.
pub fn apply(s: &Summarize, out: ExecOutput) -> Result<ExecOutput, ExecError> {
    let mut text = Vec::new();
    let reshaped = if let Some(l) = &s.lines {
        let input = out
            .fields
            .get("stdout")
            .and_then(Value::as_str)
            .unwrap_or(&out.text);
        Some(lines(l, input, &mut text)?)
    } else if let Some(sel) = &s.select {
        Some(select(sel, &out.fields, &mut text)?)
    } else {
        s.series
            .as_ref()
            .map(|ser| series(ser, &out.fields, &mut text))
            .transpose()?
    };
    let kept_original = reshaped.is_none();
    let mut fields = match reshaped.unwrap_or(out.fields) {
        Value::Object(o) => o,
        other => Map::from_iter([("response".to_string(), other)]),
    };
    if !s.advice.is_empty() {
        let said = advice(&s.advice, &Value::Object(fields.clone()));
        if said.is_empty() {
            text.push("advice: none".into());
        }
        text.extend(said.iter().map(|a| format!("→ {a}")));
        fields.insert("advice".into(), json!(said));
    }
    if !s.pick.is_empty() {
        let picked = pick(&s.pick, &Value::Object(fields.clone()));
        text.push(match &picked {
            Some(p) => format!("→ {p}"),
            None => "→ no rule holds (a value is missing)".into(),
        });
        fields.insert("pick".into(), json!(picked));
    }
    if kept_original && !out.text.is_empty() {
        text.push(out.text);
    }
    Ok(ExecOutput {
        summary: out.summary,
        text: text.join("\n"),
        fields: Value::Object(fields),
        effects: out.effects,
    })
}

fn invalid(message: String) -> ExecError {
    ExecError::Invalid {
        target: None,
        message,
    }
}

/// The non-empty lines of `input` matching `l`, counted, the last few kept.
fn lines(l: &LinesRule, input: &str, text: &mut Vec<String>) -> Result<Value, ExecError> {
    let re = l.regex().map_err(|e| invalid(format!("lines.matching: {e}")))?;
    let mut read = 0;
    let mut count = 0;
    let mut kept = VecDeque::with_capacity(l.last.min(500));
    for line in input
        .lines()
        .map(|x| x.trim_end_matches('\r'))
        .filter(|x| !x.trim().is_empty())
    {
        read += 1;
        if re.as_ref().is_none_or(|re| re.is_match(line)) {
            count += 1;
            if l.last > 0 {
                if kept.len() == l.last {
                    kept.pop_front();
                }
                kept.push_back(line.to_string());
            }
        }
    }
    text.push(match &l.matching {
        Some(m) => format!("{count} of {read} lines match /{m}/"),
        None => format!("{count} lines"),
    });
    if !kept.is_empty() {
        let shown = if kept.len() < count {
            format!("the last {}:", kept.len())
        } else {
            "they are:".to_string()
        };
        text.push(shown);
        text.extend(kept.iter().cloned());
    }
    Ok(json!({ "count": count, "read": read, "lines": Vec::from(kept) }))
}

/// The value at a dotted `path` of `v` (`""` is `v` itself).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |v, k| match v {
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        other => other.get(k),
    })
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, ExecError> {
    at(v, path)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("the answer has no array at `{path}`")))
}

/// A value as text for comparisons: strings as they are, others as JSON.
fn as_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The elements of the array whose `field` equals `equals`, the last few kept.
fn select(s: &SelectRule, v: &Value, text: &mut Vec<String>) -> Result<Value, ExecError> {
    let all = array(v, &s.array)?;
    let matched: Vec<&Value> = all
        .iter()
        .filter(|e| at(e, &s.field).is_some_and(|f| as_text(f) == s.equals))
        .collect();
    let kept = &matched[matched.len().saturating_sub(s.last)..];
    text.push(format!(
        "{} of {} {} with {} = {}",
        matched.len(),
        all.len(),
        s.array,
        s.field,
        s.equals
    ));
    text.extend(kept.iter().map(|e| e.to_string()));
    Ok(json!({ "count": matched.len(), "of": all.len(), "items": kept }))
}

/// One decimal, as the seeds print percentages.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A number at `path`: a JSON number, or a string holding one.
fn number(v: &Value, path: &str) -> Option<f64> {
    match at(v, path)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Average and peak of each field over the array.
fn series(s: &SeriesRule, v: &Value, text: &mut Vec<String>) -> Result<Value, ExecError> {
    let points = array(v, &s.array)?;
    let mut out = Map::new();
    for f in &s.fields {
        let values: Vec<f64> = points.iter().filter_map(|p| number(p, f)).collect();
        if values.is_empty() {
            text.push(format!("{f}: no values in {} points", points.len()));
            out.insert(f.clone(), json!({ "points": 0 }));
            continue;
        }
        let avg = values.iter().sum::<f64>() / values.len() as f64;
        let peak = values.iter().copied().fold(f64::MIN, f64::max);
        text.push(format!(
            "{f}: average {avg:.1}, peak {peak:.1} over {} points",
            values.len()
        ));
        out.insert(
            f.clone(),
            json!({ "avg": round1(avg), "peak": round1(peak), "points": values.len() }),
        );
    }
    Ok(Value::Object(out))
}

/// Whether `r`'s threshold holds over `v`; `None` for a rule without one.
fn holds(r: &Rule, v: &Value) -> Option<bool> {
    if r.above.is_none() && r.below.is_none() {
        return None;
    }
    let values: Vec<f64> = r.values.iter().filter_map(|p| number(v, p)).collect();
    // A missing value holds no threshold.
    if values.len() < r.values.len() || values.is_empty() {
        return Some(false);
    }
    let highest = values.iter().copied().fold(f64::MIN, f64::max);
    Some(r.above.is_none_or(|a| highest > a) && r.below.is_none_or(|b| highest < b))
}

/// The texts of every rule that holds; the fallbacks' when none did.
pub fn advice(rules: &[Rule], v: &Value) -> Vec<String> {
    let said: Vec<String> = rules
        .iter()
        .filter(|r| holds(r, v) == Some(true))
        .map(|r| r.say.clone())
        .collect();
    if !said.is_empty() {
        return said;
    }
    rules
        .iter()
        .filter(|r| holds(r, v).is_none())
        .map(|r| r.say.clone())
        .collect()
}

/// The text of the first rule that holds (a fallback always does).
pub fn pick(rules: &[Rule], v: &Value) -> Option<String> {
    rules
        .iter()
        .find(|r| holds(r, v) != Some(false))
        .map(|r| r.say.clone())
}

/// What `s` computes, in words, for rendering.
pub fn describe(s: &Summarize) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = &s.lines {
        let what = match &l.matching {
            Some(m) => format!("count the lines matching /{m}/"),
            None => "count the lines".into(),
        };
        out.push(match l.last {
            0 => what,
            n => format!("{what}, keep the last {n}"),
        });
    }
    if let Some(sel) = &s.select {
        out.push(format!(
            "keep the elements of {} whose {} is {:?} (the last {})",
            sel.array, sel.field, sel.equals, sel.last
        ));
    }
    if let Some(ser) = &s.series {
        out.push(format!(
            "average and peak of {} over {}",
            ser.fields.join(", "),
            ser.array
        ));
    }
    let rule = |r: &Rule| {
        let of = match r.values.as_slice() {
            [one] => one.clone(),
            many => format!("max({})", many.join(", ")),
        };
        let mut cond = Vec::new();
        if let Some(a) = r.above {
            cond.push(format!("{of} above {a}"));
        }
        if let Some(b) = r.below {
            cond.push(format!("{of} below {b}"));
        }
        match cond.is_empty() {
            true => format!("otherwise {:?}", r.say),
            false => format!("{} → {:?}", cond.join(" and "), r.say),
        }
    };
    if !s.advice.is_empty() {
        let rules: Vec<String> = s.advice.iter().map(rule).collect();
        out.push(format!("advice: {}", rules.join("; ")));
    }
    if !s.pick.is_empty() {
        let rules: Vec<String> = s.pick.iter().map(rule).collect();
        out.push(format!("pick the first: {}", rules.join("; ")));
    }
    out
}
