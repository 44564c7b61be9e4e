//! A command's definition fingerprint. Pure. An approval binds to the request
//! *and* to what the command was when it was requested: its action (kind,
//! target name, paths, queries, bodies, argv, …), risk, who may request it,
//! its approval policy and its argument specs. If any of those changes, the
//! fingerprint changes and an old approval no longer runs.
//!
//! A `seq` covers each of its steps, in order, the same way.
//!
//! Not covered: the summary, the reply template and the source location
//! (they change nothing that runs), and the target table (base URLs are
//! deployment configuration, overridden per environment).
//!
//! Every struct is destructured without `..`: a field added to the model
//! fails to compile here until it is either covered or named as ignored.

use super::model::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

impl Command {
    /// SHA-256 (hex) of the definition's canonical JSON (version 1).
    pub fn definition_hash(&self) -> String {
        let Command {
            profile,
            name,
            summary: _,
            args,
            risk,
            roles,
            approve,
            action,
            preview,
            reply: _,
            schedule,
            location: _,
        } = self;
        let mut def = json!({
            "v": 1,
            "profile": profile,
            "name": name,
            "risk": risk.as_str(),
            "roles": roles,
            "approve": approve.as_ref().map(policy),
            "args": args.iter().map(arg).collect::<Vec<_>>(),
            "action": action_json(action),
        });
        // Only when set: commands without one keep the hashes they had.
        if let Some(p) = preview {
            def["preview"] = preview_json(p);
        }
        if let Some(s) = schedule {
            def["schedule"] = schedule_json(s);
        }
        // Serializing a `Value` cannot fail.
        let bytes = serde_json::to_vec(&def).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }
}

fn ms(d: &Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_millis() as u64)
}

fn schedule_json(s: &Schedule) -> Value {
    match s {
        Schedule::Watch {
            every,
            lasts,
            min_every,
            max_for,
            stop,
        } => json!({ "watch": { "every": every, "for": lasts, "stop": stop,
            "min_every_ms": min_every.as_millis() as u64, "max_for_ms": max_for.as_millis() as u64 } }),
        Schedule::Then {
            after,
            default,
            min,
            max,
            when,
            set,
        } => json!({ "then": { "after": after, "default_ms": default.as_millis() as u64,
            "min_ms": min.as_millis() as u64, "max_ms": max.as_millis() as u64, "when": when, "set": set } }),
    }
}

fn policy(p: &ApprovePolicy) -> Value {
    let ApprovePolicy {
        roles,
        count,
        ttl,
        break_glass,
    } = p;
    let mut v = json!({ "roles": roles, "count": count, "ttl_ms": ttl.as_millis() as u64 });
    // Only when set: commands without it keep the hashes they had.
    if *break_glass {
        v["break_glass"] = json!(true);
    }
    v
}

fn preview_json(p: &Preview) -> Value {
    let Preview {
        what,
        action,
        items,
        count,
        show,
        samples,
        columns,
        only,
    } = p;
    let mut v = json!({ "what": what, "action": action_json(action), "items": items, "count": count, "show": show, "samples": samples });
    // Only when named, so the hashes of the previews written before they existed stay.
    if !columns.is_empty() {
        v["columns"] = json!(columns);
    }
    if !only.is_empty() {
        v["only"] = json!(only);
    }
    v
}

fn arg(a: &ArgSpec) -> Value {
    let ArgSpec {
        name,
        kind,
        flag,
        required,
        default,
        help: _,
    } = a;
    json!({ "name": name, "kind": kind_json(kind), "flag": flag, "required": required, "default": default })
}

fn kind_json(k: &ArgKind) -> Value {
    match k {
        ArgKind::Enum(values) => json!({ "enum": values }),
        ArgKind::Int { min, max } => json!({ "int": [min, max] }),
        ArgKind::Duration => json!("duration"),
        ArgKind::String { max_len, pattern } => {
            json!({ "string": { "max_len": max_len, "pattern": pattern.as_ref().map(|r| r.as_str()) } })
        }
        ArgKind::Id => json!("id"),
        ArgKind::Ip { protected } => {
            json!({ "ip": { "protected": protected.iter().map(ToString::to_string).collect::<Vec<_>>() } })
        }
        ArgKind::Bool => json!("bool"),
        ArgKind::List(inner) => json!({ "list": kind_json(inner) }),
    }
}

fn action_json(a: &Action) -> Value {
    match a {
        Action::Http(HttpAction {
            method,
            target,
            path,
            query,
            body,
            expect,
            body_secrets,
            // Derived from the argument specs, which are covered.
            lists: _,
        }) => {
            let mut h = json!({
                "method": method, "target": target, "path": path,
                "query": query.iter().collect::<Vec<_>>(), "body": body, "expect": expect,
            });
            // Only when set (the names, never values), so other hashes stay as they were.
            if !body_secrets.is_empty() {
                h["body_secrets"] = json!(body_secrets);
            }
            json!({ "http": h })
        }
        Action::Redis(RedisAction {
            target,
            command,
            scan,
            delete_matching,
            limit,
            timeout,
        }) => json!({ "redis": {
            "target": target, "command": command, "scan": scan,
            "delete_matching": delete_matching, "limit": limit, "timeout_ms": ms(timeout),
        }}),
        Action::Sql(SqlAction {
            target,
            query,
            params,
            timeout,
            transaction,
            identifiers,
        }) => {
            let mut q =
                json!({ "target": target, "query": query, "params": params, "timeout_ms": ms(timeout) });
            // Only when set, so the hashes of actions without them stay as they were.
            if !transaction {
                q["transaction"] = json!(false);
            }
            if !identifiers.is_empty() {
                q["identifiers"] = json!(identifiers);
            }
            json!({ "sql": q })
        }
        // The placement (host, config values) is deployment configuration,
        // like target URLs.
        Action::Process(ProcessAction {
            argv,
            env,
            cwd,
            timeout,
            place: _,
        }) => {
            let mut p = json!({ "argv": argv, "env": env, "timeout_ms": ms(timeout) });
            // Only when set, so the hashes of actions without one stay as they were.
            if let Some(cwd) = cwd {
                p["cwd"] = json!(cwd);
            }
            json!({ "process": p })
        }
        Action::Health(HealthAction { checks }) => {
            let checks: Vec<Value> = checks
                .iter()
                .map(|c| {
                    let HealthCheck {
                        component,
                        target,
                        path,
                        slow,
                    } = c;
                    json!({ "component": component, "target": target, "path": path, "slow_ms": ms(slow) })
                })
                .collect();
            json!({ "health": checks })
        }
        Action::Seq(Seq { steps, finally }) => {
            // Every step, in order: an approval binds to all of them.
            let list = |steps: &[Step]| -> Vec<Value> {
                steps
                    .iter()
                    .map(|s| {
                        let Step { action, offset: _ } = s;
                        action_json(action)
                    })
                    .collect()
            };
            // Without cleanup steps, as before they existed (the same hash).
            if finally.is_empty() {
                json!({ "seq": list(steps) })
            } else {
                json!({ "seq": { "steps": list(steps), "finally": list(finally) } })
            }
        }
        Action::Internal(InternalAction::Link { target, path }) => {
            json!({ "internal": { "link": { "target": target, "path": path } } })
        }
        Action::Internal(InternalAction::Maintenance(m)) => {
            let step = match m {
                MaintenanceStep::Open { lasts, from } => {
                    json!({ "open": { "lasts": lasts, "from": from } })
                }
                MaintenanceStep::Close => json!("close"),
                MaintenanceStep::Require => json!("require"),
            };
            json!({ "internal": { "maintenance": step } })
        }
        Action::Internal(InternalAction::Confirm(c)) => {
            let within = crate::duration::format(c.within);
            json!({ "internal": { "confirm": { "text": c.text, "within": within } } })
        }
        Action::Variants(Variants { by, choices }) => {
            // Every choice: an approval binds to what each value would run.
            let choices: Vec<Value> = choices
                .iter()
                .map(|c| {
                    let Choice {
                        value,
                        action: Step { action, offset: _ },
                        approve: _,
                        args,
                        policy: own,
                    } = c;
                    // Only when set: choices without them keep the hashes they had.
                    // (`approve` is covered as `policy`, the checked form.)
                    match (own, args.is_empty()) {
                        (None, true) => json!([value, action_json(action)]),
                        _ => json!([value, action_json(action), { "approve": own.as_ref().map(policy), "args": args }]),
                    }
                })
                .collect();
            json!({ "variants": { "by": by, "choices": choices } })
        }
        Action::Summarize(s) => summarize_json(s),
        Action::Each(s) => json!({ "each": action_json(&s.action) }),
    }
}

/// What is summarized and every rule: an approval binds to both.
fn summarize_json(s: &Summarize) -> Value {
    let Summarize {
        of,
        lines,
        select,
        series,
        advice,
        pick,
    } = s;
    let Step { action, offset: _ } = of.as_ref();
    let lines = lines.as_ref().map(|l| {
        let LinesRule { matching, last } = l;
        json!({ "matching": matching, "last": last })
    });
    let select = select.as_ref().map(|x| {
        let SelectRule {
            array,
            field,
            equals,
            last,
        } = x;
        json!({ "array": array, "field": field, "equals": equals, "last": last })
    });
    let series = series.as_ref().map(|x| {
        let SeriesRule { array, fields } = x;
        json!({ "array": array, "fields": fields })
    });
    let rules = |rules: &[Rule]| -> Vec<Value> {
        rules
            .iter()
            .map(|r| {
                let Rule {
                    values,
                    above,
                    below,
                    say,
                } = r;
                json!({ "values": values, "above": above, "below": below, "say": say })
            })
            .collect()
    };
    json!({ "summarize": {
        "of": action_json(action), "lines": lines, "select": select, "series": series,
        "advice": rules(advice), "pick": rules(pick),
    }})
}

#[cfg(test)]
mod tests {
    use super::super::{load_str, Context};
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// The one command of a catalog `text`, whose http target `api` is given.
    fn load_one(text: &str) -> Command {
        let text = format!("[target.api]\nkind = \"http\"\nurl = \"http://x\"\n{text}");
        let roles: BTreeSet<String> = ["oncall", "sre"].iter().map(|s| s.to_string()).collect();
        let ctx = Context {
            roles: &roles,
            env: &HashMap::new(),
        };
        let mut cat = load_str("c.toml", &text, &ctx).expect("catalog");
        cat.commands.remove(0)
    }

    fn command() -> Command {
        load_one(
            r#"
[command.queue."queue retry"]
summary = "s"
args = { queue = { kind = "enum", values = ["a", "b"] } }
risk = "write"
roles = ["oncall"]
approve = { roles = ["sre"], ttl = "15m" }
action = { http = { method = "POST", target = "api", path = "/q/{queue}/retry" } }
reply = "done"
"#,
        )
    }

    #[test]
    fn what_runs_and_who_decides_change_the_hash() {
        let base = command().definition_hash();
        assert_eq!(base, command().definition_hash(), "stable");
        assert_eq!(base.len(), 64);
        type Change = fn(&mut Command);
        let changes: Vec<(&str, Change)> = vec![
            ("path", |c| {
                if let Action::Http(h) = &mut c.action {
                    h.path = "/q/{queue}/purge".into();
                }
            }),
            ("method", |c| {
                if let Action::Http(h) = &mut c.action {
                    h.method = "DELETE".into();
                }
            }),
            ("target", |c| {
                if let Action::Http(h) = &mut c.action {
                    h.target = "other".into();
                }
            }),
            ("risk", |c| c.risk = Risk::Destructive),
            ("roles", |c| c.roles.push("support".into())),
            ("approvers", |c| {
                c.approve.as_mut().unwrap().roles.push("oncall".into())
            }),
            ("count", |c| c.approve.as_mut().unwrap().count = 2),
            ("ttl", |c| {
                c.approve.as_mut().unwrap().ttl = Duration::from_secs(1)
            }),
            ("no approval", |c| c.approve = None),
            ("arg values", |c| {
                c.args[0].kind = ArgKind::Enum(vec!["a".into(), "c".into()])
            }),
            ("arg default", |c| c.args[0].default = Some("a".into())),
            ("a preview", |c| c.preview = Some(preview())),
        ];
        for (what, change) in changes {
            let mut c = command();
            change(&mut c);
            assert_ne!(c.definition_hash(), base, "{what} must change the hash");
        }
    }

    fn preview() -> Preview {
        let action = r#"{ http = { target = "api", path = "/q/{queue}" } }"#;
        toml::from_str(&format!("what = \"jobs\"\naction = {action}")).unwrap()
    }

    #[test]
    fn every_field_of_a_preview_is_in_the_hash() {
        let mut with = command();
        with.preview = Some(preview());
        let base = with.definition_hash();
        type Change = fn(&mut Preview);
        let changes: Vec<(&str, Change)> = vec![
            ("what", |p| p.what = "rows".into()),
            ("action", |p| {
                if let Action::Http(h) = &mut p.action {
                    h.path = "/other".into();
                }
            }),
            ("items", |p| p.items = Some("id".into())),
            ("count", |p| p.count = Some("n".into())),
            ("show", |p| p.show = vec!["state".into()]),
            ("samples", |p| p.samples = 3),
            ("columns", |p| p.columns = vec!["path".into()]),
            ("only", |p| {
                p.only.insert("state".into(), vec!["running".into()]);
            }),
        ];
        for (what, change) in changes {
            let mut c = with.clone();
            change(c.preview.as_mut().unwrap());
            assert_ne!(
                c.definition_hash(),
                base,
                "the preview's {what} must change the hash"
            );
        }
    }

    #[test]
    fn wording_does_not_change_the_hash() {
        let base = command().definition_hash();
        let mut c = command();
        c.summary = "another summary".into();
        c.reply = Some("Retried {response.retried}".into());
        c.args[0].help = Some("the queue".into());
        c.location.line += 10;
        assert_eq!(c.definition_hash(), base);
    }

    fn seq_command() -> Command {
        load_one(
            r#"
[command.queue."deploy verify"]
summary = "s"
risk = "read"
roles = ["oncall"]
action = { seq = [
  { http = { target = "api", path = "/a" } },
  { http = { target = "api", path = "/b" } },
] }
"#,
        )
    }

    fn steps(c: &mut Command) -> &mut Vec<Step> {
        match &mut c.action {
            Action::Seq(seq) => &mut seq.steps,
            other => panic!("not a seq: {other:?}"),
        }
    }

    #[test]
    fn every_step_of_a_seq_is_in_the_hash() {
        let base = seq_command().definition_hash();
        type Change = fn(&mut Command);
        let changes: Vec<(&str, Change)> = vec![
            ("a later step's path", |c| {
                if let Action::Http(h) = &mut steps(c)[1].action {
                    h.path = "/purge".into();
                }
            }),
            ("order", |c| steps(c).reverse()),
            ("one step less", |c| {
                steps(c).pop();
            }),
            ("one step more", |c| {
                let extra = steps(c)[0].clone();
                steps(c).push(extra);
            }),
            ("a step nested", |c| {
                let inner = steps(c).remove(1);
                steps(c).push(Action::Seq(vec![inner].into()).into());
            }),
            ("a finally step", |c| {
                let cleanup = steps(c)[0].clone();
                if let Action::Seq(seq) = &mut c.action {
                    seq.finally.push(cleanup);
                }
            }),
        ];
        for (what, change) in changes {
            let mut c = seq_command();
            change(&mut c);
            assert_ne!(c.definition_hash(), base, "{what} must change the hash");
        }
        let mut moved = seq_command();
        steps(&mut moved)[1].offset += 40;
        assert_eq!(
            moved.definition_hash(),
            base,
            "where a step is written is not what runs"
        );
    }
}
