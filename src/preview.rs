//! What a destructive command's preview found: a count, a few samples and
//! (optionally) the set of items execution is bound to. Pure. Produced by
//! `exec::Executor::preview`, stored with the approval (JSON in
//! `approvals.preview`), shown on its card and handed to the action when it
//! runs: `{preview.items}` (a Postgres array literal of the item ids),
//! `{preview.count}` and `{preview.<column>}` (the first row's values, e.g. a
//! cutoff computed once) become template values, and a Redis
//! `delete_matching` deletes only the previewed keys.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The result of one preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previewed {
    /// What is counted: `keys`, `queries`, `rows`, `jobs`.
    pub what: String,
    pub count: u64,
    /// False when the preview stopped at its limit: `count` is a lower bound
    /// (and only the items listed are touched).
    pub complete: bool,
    /// Up to the preview's `samples` lines, as shown on the card.
    pub samples: Vec<String>,
    /// The samples are the first of the counted items (keys, rows), not a
    /// description of the whole (a key's type, a database's size).
    #[serde(default)]
    pub listed: bool,
    /// The ids execution may touch; `None` when the preview binds no items
    /// (a count shown for information, like DBSIZE before FLUSHALL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<String>>,
    /// The first row's values (sql) or the named fields (http), for
    /// `{preview.<name>}` in the action.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
}

/// The template value of the previewed item set.
pub const ITEMS: &str = "preview.items";
/// The template value of the previewed count.
pub const COUNT: &str = "preview.count";
/// The template value of one previewed item, inside an `each` action.
pub const ITEM: &str = "preview.item";
/// The previewed items as a JSON array of strings, for a process action:
/// its argv element `{preview.items}` becomes one element per item, its env
/// value `{preview.items}` the items one per line. Not a placeholder name (it
/// has a space), so no template can name it.
pub const ITEM_LIST: &str = "preview.items list";

impl Previewed {
    /// Nothing matched: there is nothing to approve.
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.complete
    }

    /// `1 214 keys`, `at least 10 000 keys (limit reached: only these are touched)`.
    pub fn headline(&self) -> String {
        let n = grouped(self.count);
        if self.complete {
            format!("{n} {}", self.what)
        } else if self.items.is_some() {
            format!(
                "at least {n} {} (preview limit reached: only these {n} are touched)",
                self.what
            )
        } else {
            format!("at least {n} {}", self.what)
        }
    }

    /// One line for replies and the audit: `1 214 keys (a, b, …)`.
    pub fn line(&self) -> String {
        if self.samples.is_empty() {
            return self.headline();
        }
        let more = if self.more_than_shown() { ", …" } else { "" };
        format!("{} ({}{more})", self.headline(), self.samples.join(", "))
    }

    /// Listed samples that are not every counted item.
    pub fn more_than_shown(&self) -> bool {
        self.listed && ((self.count as usize) > self.samples.len() || !self.complete)
    }

    /// The template values this preview gives the action.
    pub fn args(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .values
            .iter()
            .map(|(k, v)| (format!("preview.{k}"), v.clone()))
            .collect();
        out.insert(COUNT.into(), self.count.to_string());
        if let Some(items) = &self.items {
            out.insert(ITEMS.into(), pg_array(items));
            out.insert(ITEM_LIST.into(), serde_json::json!(items).to_string());
        }
        out
    }

    /// The same preview bound to `items` only (those of its items that still
    /// match at execution), its count and samples following them.
    pub fn narrowed_to(&self, items: Vec<String>) -> Previewed {
        let mut out = self.clone();
        out.count = items.len() as u64;
        out.items = Some(items);
        out
    }
}

/// The previewed items handed to a run (the [`ITEM_LIST`] value of `args`),
/// if any; `Err` with the reason when that value does not read as a list.
pub fn item_list(args: &BTreeMap<String, String>) -> Option<Result<Vec<String>, String>> {
    let list = args.get(ITEM_LIST)?;
    Some(serde_json::from_str(list).map_err(|e| format!("the previewed items do not read as a list: {e}")))
}

/// `{"a","b\"c"}`: a Postgres array literal with every element quoted (so a
/// value is always one element), bound as one parameter and cast in SQL
/// (`pid = ANY($2::int[])`).
pub fn pg_array(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// `1214` → `1 214` (thin groups of three, as the cards show counts).
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u64, samples: &[&str], complete: bool) -> Previewed {
        Previewed {
            what: "keys".into(),
            count: n,
            complete,
            samples: samples.iter().map(|s| s.to_string()).collect(),
            items: Some(samples.iter().map(|s| s.to_string()).collect()),
            listed: true,
            values: BTreeMap::new(),
        }
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1214), "1 214");
        assert_eq!(grouped(1_000_000), "1 000 000");
    }

    #[test]
    fn lines_say_when_more_exist_and_when_the_limit_cut_the_preview() {
        assert_eq!(keys(2, &["a", "b"], true).line(), "2 keys (a, b)");
        assert_eq!(keys(1214, &["a", "b"], true).line(), "1 214 keys (a, b, …)");
        assert_eq!(
            keys(10000, &["a"], false).line(),
            "at least 10 000 keys (preview limit reached: only these 10 000 are touched) (a, …)"
        );
        let mut described = keys(14, &["queued 14 · running 6"], true);
        described.listed = false;
        assert_eq!(described.line(), "14 keys (queued 14 · running 6)");
        assert!(keys(0, &[], true).is_empty());
        assert!(!keys(0, &[], false).is_empty());
    }

    #[test]
    fn items_become_one_array_literal_that_no_value_can_break_out_of() {
        let items = vec!["12".to_string(), "a\",\"b".to_string(), "c\\".to_string()];
        assert_eq!(pg_array(&items), r#"{"12","a\",\"b","c\\"}"#);
        let mut p = keys(3, &[], true);
        p.items = Some(items);
        p.values.insert("cutoff".into(), "2026-01-01".into());
        let args = p.args();
        assert_eq!(args["preview.count"], "3");
        assert_eq!(args["preview.cutoff"], "2026-01-01");
        assert!(args["preview.items"].starts_with("{\"12\""));
        let list: Vec<String> = serde_json::from_str(&args[ITEM_LIST]).unwrap();
        assert_eq!(list, ["12", "a\",\"b", "c\\"]);
        assert!(crate::template::placeholders(&format!("{{{ITEM_LIST}}}")).is_empty());
    }
}
