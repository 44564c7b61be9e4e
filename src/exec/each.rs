//! `each` actions: one action run once per previewed item, `{preview.item}`
//! being that item (one path segment, parameter or argument, escaped by the
//! inner action's executor like any value). Every item is checked (rendered)
//! before the first runs, then every one is tried, in the previewed order,
//! whatever the others did: an emergency stop of every job stops all it
//! can. The result lists each item's outcome; one that failed makes the
//! whole a failure ([`ExecError::Items`]) that still lists every outcome.

use super::{ExecError, ExecOutput, Executor};
use crate::catalog::{Step, Target};
use crate::preview::ITEM;
use serde_json::json;
use std::collections::BTreeMap;

impl Executor {
    pub(super) async fn run_each(
        &self,
        step: &Step,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        let Some(items) = super::process::previewed_items(args)? else {
            return Err(ExecError::Invalid {
                target: None,
                message: "an each action runs over its preview's items, and none were given".into(),
            });
        };
        let with_item = |item: &str| {
            let mut a = args.clone();
            a.insert(ITEM.to_string(), item.to_string());
            a
        };
        for item in &items {
            super::render(&step.action, targets, &with_item(item))?;
        }
        let (mut lines, mut results, mut failed) = (Vec::new(), Vec::new(), 0);
        for item in &items {
            // Boxed: the inner action may be a seq.
            match Box::pin(self.run(&step.action, targets, &with_item(item))).await {
                Ok(out) => {
                    lines.push(format!("{item}: {}", out.summary));
                    results.push(json!({ "item": item, "ok": true, "summary": out.summary }));
                }
                Err(e) => {
                    failed += 1;
                    lines.push(format!("{item}: failed: {e}"));
                    results.push(json!({ "item": item, "ok": false, "error": e.to_string() }));
                }
            }
        }
        let done = items.len() - failed;
        let report = format!(
            "{done} of {} done, {failed} failed\n{}",
            items.len(),
            lines.join("\n")
        );
        if failed > 0 {
            return Err(ExecError::Items { report });
        }
        Ok(ExecOutput {
            summary: format!("{done} of {} done", items.len()),
            text: lines.join("\n"),
            fields: json!({ "done": done, "failed": failed, "results": results }),
            effects: Vec::new(),
        })
    }
}
