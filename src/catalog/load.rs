//! Reading `commands/*.toml` into a validated `Catalog`. Every problem found is
//! collected (not just the first) and reported as `file:line: message`.

use super::model::*;
use crate::template;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use toml::Spanned;

/// One thing wrong with the catalog or config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Everything wrong with a catalog, in file order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct CheckError {
    pub problems: Vec<Problem>,
}

/// One catalog file (`commands/*.toml`): targets, commands by profile and
/// profile sections, in any mix; every file of the directory is one catalog.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// `[target.<name>]`: something actions talk to (its URL overridden by
    /// `OPSBOT_TARGET_<NAME>`).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Target>")]
    target: IndexMap<String, Spanned<Target>>,
    /// `[command.<profile>."<words>"]`: a chat command of one profile.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, IndexMap<String, RawCommand>>")]
    command: IndexMap<String, IndexMap<String, Spanned<RawCommand>>>,
    /// `[profile.<name>]`: where the profile's process actions run and the
    /// config values they may name.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawProfile>")]
    profile: IndexMap<String, Spanned<RawProfile>>,
}

/// `[profile.<name>]`: where the profile's process actions run, and the
/// config values (files, directories) they may name.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    /// `ssh://user@host[:port]`, or `local` (the bot's host, the default).
    #[serde(default)]
    host: Option<String>,
    /// Private key file for ssh's `-i`.
    #[serde(default)]
    ssh_key: Option<String>,
    /// `logs.app = "/var/log/app.log"` (nested tables give dotted names).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, super::schema::ProfileValue>")]
    values: toml::Table,
}

/// A profile section as loaded, with where it was written.
struct ProfileDef {
    host: Option<String>,
    ssh_key: Option<String>,
    values: BTreeMap<String, String>,
    location: Location,
}

/// One chat command of one profile.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    /// One line for `/help` and `opsbot commands`.
    summary: String,
    /// Typed arguments, in usage order: positionals, then `--flags`.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawArg>")]
    args: IndexMap<String, Spanned<RawArg>>,
    risk: Risk,
    /// Who may request it (`anyone` allows unknown identities, for reads).
    #[schemars(with = "Vec<String>")]
    roles: Spanned<Vec<String>>,
    /// The two-person rule; absent: it runs at once.
    #[serde(default)]
    #[schemars(with = "Option<ApproveSpec>")]
    approve: Option<Spanned<ApproveSpec>>,
    #[schemars(with = "Action")]
    action: Spanned<Action>,
    /// A destructive command's read-only preview, shown on its approval card.
    #[serde(default)]
    #[schemars(with = "Option<Preview>")]
    preview: Option<Spanned<Preview>>,
    /// Reply template: `{response.field}`, `{output}`, `{status}`, `{rows}`, args.
    #[serde(default)]
    reply: Option<String>,
    /// A read command the bot runs again every so often, editing one message.
    #[serde(default)]
    #[schemars(with = "Option<WatchSpec>")]
    watch: Option<Spanned<WatchSpec>>,
    /// A run the bot makes once more, some time after the request.
    #[serde(default)]
    #[schemars(with = "Option<ThenSpec>")]
    then: Option<Spanned<ThenSpec>>,
}

/// A typed argument (`kind`), positional unless `flag = true`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawArg {
    #[schemars(with = "super::schema::ArgKindName")]
    kind: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    min: Option<i64>,
    #[serde(default)]
    max: Option<i64>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    max_len: Option<usize>,
    /// Element kind of a list.
    #[serde(default)]
    #[schemars(with = "Option<super::schema::ArgKindName>")]
    of: Option<String>,
    /// `ip`: ranges never accepted (`["203.0.113.0/24"]`).
    #[serde(default)]
    protected: Vec<String>,
    #[serde(default)]
    flag: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    #[schemars(with = "Option<super::schema::ArgDefault>")]
    default: Option<toml::Value>,
    #[serde(default)]
    help: Option<String>,
}

/// What validation needs to know from outside the catalog.
pub struct Context<'a> {
    /// Role names that exist (built-in and configured).
    pub roles: &'a BTreeSet<String>,
    /// The environment, for `OPSBOT_TARGET_<NAME>` overrides.
    pub env: &'a HashMap<String, String>,
}

/// Loads and validates every `*.toml` in `dir`, in file-name order.
pub fn load_dir(dir: &Path, ctx: &Context) -> Result<Catalog, CheckError> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            return Err(CheckError {
                problems: vec![Problem {
                    file: dir.display().to_string(),
                    line: 0,
                    message: format!("cannot read the catalog directory: {e}"),
                }],
            })
        }
    };
    files.sort();
    let mut sources = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(text) => sources.push((name, text)),
            Err(e) => {
                return Err(CheckError {
                    problems: vec![Problem {
                        file: name,
                        line: 0,
                        message: format!("cannot read: {e}"),
                    }],
                })
            }
        }
    }
    let refs: Vec<(&str, &str)> = sources.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    load_sources(&refs, ctx)
}

/// Loads one catalog text (tests, embedded catalogs).
pub fn load_str(file: &str, text: &str, ctx: &Context) -> Result<Catalog, CheckError> {
    load_sources(&[(file, text)], ctx)
}

/// Loads several `(file name, text)` sources as one catalog.
pub fn load_sources(sources: &[(&str, &str)], ctx: &Context) -> Result<Catalog, CheckError> {
    let mut b = Builder::default();
    let mut parsed = Vec::new();
    for (file, text) in sources {
        match toml::from_str::<RawFile>(text) {
            Ok(raw) => parsed.push((*file, *text, raw)),
            Err(e) => {
                let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
                b.problem(file, line, e.message().trim().to_string());
            }
        }
    }
    // Targets and profile sections first: commands in any file may use a
    // target or a profile's values from any file.
    for (file, text, raw) in &mut parsed {
        for (name, t) in std::mem::take(&mut raw.target) {
            let line = line_of(text, t.span().start);
            b.add_target(file, line, name, t.into_inner(), ctx.env);
        }
        for (name, p) in std::mem::take(&mut raw.profile) {
            let line = line_of(text, p.span().start);
            b.add_profile(file, line, name, p.into_inner());
        }
    }
    for (file, text, raw) in parsed {
        for (profile, cmds) in raw.command {
            for (name, c) in cmds {
                let line = line_of(text, c.span().start);
                let loc = Location {
                    file: file.to_string(),
                    line,
                };
                b.add_command(text, loc, profile.clone(), name, c.into_inner(), ctx);
            }
        }
    }
    if b.problems.is_empty() {
        Ok(b.catalog)
    } else {
        Err(CheckError { problems: b.problems })
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[derive(Default)]
struct Builder {
    catalog: Catalog,
    problems: Vec<Problem>,
    profiles: BTreeMap<String, ProfileDef>,
    /// Each profile's placement, built on first use (env overrides applied).
    placements: BTreeMap<String, Placement>,
}

impl Builder {
    fn problem(&mut self, file: &str, line: usize, message: String) {
        self.problems.push(Problem {
            file: file.to_string(),
            line,
            message,
        });
    }

    fn add_target(
        &mut self,
        file: &str,
        line: usize,
        name: String,
        mut t: Target,
        env: &HashMap<String, String>,
    ) {
        if let Some(prev) = self.catalog.targets.get(&name) {
            let at = prev.location.as_ref().map(|l| l.to_string()).unwrap_or_default();
            self.problem(
                file,
                line,
                format!("target `{name}` is defined twice (also at {at})"),
            );
            return;
        }
        if let Some(url) = env.get(&target_env_var(&name)) {
            t.url = url.clone();
        }
        t.name = name.clone();
        t.location = Some(Location {
            file: file.to_string(),
            line,
        });
        self.catalog.targets.insert(name, t);
    }

    fn add_profile(&mut self, file: &str, line: usize, name: String, p: RawProfile) {
        if let Some(prev) = self.profiles.get(&name) {
            let msg = format!(
                "profile section `{name}` is defined twice (also at {})",
                prev.location
            );
            self.problem(file, line, msg);
            return;
        }
        let mut values = BTreeMap::new();
        let mut bad = Vec::new();
        flatten_values("", p.values, &mut values, &mut bad);
        for key in bad {
            self.problem(
                file,
                line,
                format!("profile `{name}`: value `{key}` must be a string (a file or directory)"),
            );
        }
        let location = Location {
            file: file.to_string(),
            line,
        };
        let def = ProfileDef {
            host: p.host,
            ssh_key: p.ssh_key,
            values,
            location,
        };
        self.profiles.insert(name, def);
    }

    /// Where `profile`'s process actions run and the values they may use:
    /// its section, then `OPSBOT_HOST_<P>`, `OPSBOT_HOST_<P>_KEY` and
    /// `OPSBOT_VALUE_<P>_<NAME>` from the environment.
    fn placement(&mut self, profile: &str, env: &HashMap<String, String>) -> Placement {
        if let Some(p) = self.placements.get(profile) {
            return p.clone();
        }
        let var = host_env_var(profile);
        let def = self.profiles.get(profile);
        let (file, line) = def.map_or((var.clone(), 0), |d| (d.location.file.clone(), d.location.line));
        let from_env = env.get(&var).filter(|v| !v.is_empty());
        let url = from_env.or(def.and_then(|d| d.host.as_ref())).cloned();
        let key = env
            .get(&format!("{var}_KEY"))
            .filter(|v| !v.is_empty())
            .or(def.and_then(|d| d.ssh_key.as_ref()))
            .cloned();
        let (where_file, where_line) = match from_env {
            Some(_) => (var.clone(), 0),
            None => (file, line),
        };
        let mut values = def.map(|d| d.values.clone()).unwrap_or_default();
        let host = match url.as_deref() {
            None | Some("local") => None,
            Some(u) => match SshHost::parse(u, key) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.problem(&where_file, where_line, format!("profile `{profile}`: {e}"));
                    None
                }
            },
        };
        for (name, v) in values.iter_mut() {
            if let Some(o) = env.get(&value_env_var(profile, name)) {
                *v = o.clone();
            }
        }
        let place = Placement {
            profile: profile.to_string(),
            host,
            values,
        };
        self.placements.insert(profile.to_string(), place.clone());
        place
    }

    fn add_command(
        &mut self,
        text: &str,
        loc: Location,
        profile: String,
        name: String,
        raw: RawCommand,
        ctx: &Context,
    ) {
        let before = self.problems.len();
        let file = loc.file.clone();
        let at = |line: usize| Location {
            file: file.clone(),
            line,
        };
        if let Some(prev) = self.catalog.get(&profile, &name) {
            let msg = format!(
                "command `{name}` of profile `{profile}` is defined twice (also at {})",
                prev.location
            );
            self.problem(&loc.file, loc.line, msg);
        }
        if !valid_words(&name) {
            let msg = format!("command name `{name}` must be lowercase words separated by single spaces");
            self.problem(&loc.file, loc.line, msg);
        }
        let roles_loc = at(line_of(text, raw.roles.span().start));
        self.check_roles(&roles_loc, "roles", raw.roles.get_ref(), ctx.roles);
        let mut args = Vec::new();
        for (arg_name, a) in raw.args {
            let l = at(line_of(text, a.span().start));
            if let Some(spec) = self.arg_spec(&l, arg_name, a.into_inner()) {
                args.push(spec);
            }
        }
        let approve = raw.approve.as_ref().and_then(|a| {
            let l = at(line_of(text, a.span().start));
            self.approve_policy(&l, a.get_ref().clone(), ctx.roles)
        });
        let action_loc = at(line_of(text, raw.action.span().start));
        let mut action = raw.action.into_inner();
        self.check_choices(text, &action_loc, &mut action, &args, ctx.roles);
        // Every request is approved: by the command's policy or its variant's own.
        let has_approve = raw.approve.is_some()
            || matches!(&action, Action::Variants(v) if v.choices.iter().all(|c| c.approve.is_some()));
        let place = self.placement(&profile, ctx.env);
        for p in action.processes_mut() {
            p.place = place.clone();
        }
        let lists: BTreeSet<String> = args
            .iter()
            .filter(|a| matches!(a.kind, ArgKind::List(_)))
            .map(|a| a.name.clone())
            .collect();
        for h in action.https_mut() {
            h.lists = lists.clone();
        }
        let destructive = raw.risk == Risk::Destructive;
        let guarded = destructive && approve.is_some();
        if action.depth() > MAX_SEQ_DEPTH {
            let msg = format!(
                "seq nested {} deep (at most {MAX_SEQ_DEPTH}: a seq may hold seqs of plain actions)",
                action.depth()
            );
            self.problem(&action_loc.file, action_loc.line, msg);
        }
        for msg in guided_problems(&action) {
            self.problem(&action_loc.file, action_loc.line, msg);
        }
        let mut preview = raw
            .preview
            .map(|p| (at(line_of(text, p.span().start)), p.into_inner()));
        for p in preview.iter_mut().flat_map(|(_, p)| p.action.processes_mut()) {
            p.place = place.clone();
        }
        if let Some((ploc, p)) = &preview {
            let checks = ActionChecks {
                text,
                args: &args,
                guarded: false,
                destructive: false,
                preview: None,
                place: &place,
                in_each: false,
            };
            self.check_action(&checks, ploc, &p.action, "preview: ");
            let mut found = preview_problems(p);
            if !has_approve {
                found.push(
                    "a preview is shown on the approval card: the command needs an approve policy".into(),
                );
            }
            for message in found {
                self.problem(&ploc.file, ploc.line, format!("preview: {message}"));
            }
        }
        let preview = preview.map(|(_, p)| p);
        let checks = ActionChecks {
            text,
            args: &args,
            guarded,
            destructive,
            place: &place,
            preview: preview.as_ref(),
            in_each: false,
        };
        self.check_action(&checks, &action_loc, &action, "");
        if let Some(reply) = &raw.reply {
            for p in template::placeholders(reply) {
                let root = p.split('.').next().unwrap_or(p);
                let known = matches!(root, "response" | "output" | "status" | "rows")
                    || args.iter().any(|a| a.name == p);
                if !known {
                    let msg = format!("reply uses `{{{p}}}`, which is not an argument of `{name}` (nor response.*, output, status, rows)");
                    self.problem(&loc.file, loc.line, msg);
                }
            }
        }
        // A follow-up runs without an approval: any policy at all refuses it.
        let approved = approve.is_some()
            || matches!(&action, Action::Variants(v) if v.choices.iter().any(|c| c.approve.is_some()));
        let schedule = self.schedule(text, &loc, (raw.watch, raw.then), &args, raw.risk, approved);
        let guided = action.leaves().iter().any(|a| a.is_confirm());
        if guided && (schedule.is_some() || preview.is_some()) {
            let msg = "a guided seq (with `internal.confirm` steps) has no preview, watch or then: the steps after a pause run later, on their own";
            self.problem(&action_loc.file, action_loc.line, msg.into());
        }
        // A scheduled run executes the action alone: no window is read for
        // a `require` step, none opened or closed from its result.
        if schedule.is_some() && !action.maintenance_steps().is_empty() {
            let msg = "a command with maintenance steps (`internal.maintenance`) has no watch or then: its scheduled runs would not open, close or check the window";
            self.problem(&action_loc.file, action_loc.line, msg.into());
        }
        if self.problems.len() == before {
            self.catalog.commands.push(Command {
                profile,
                name,
                summary: raw.summary,
                args,
                risk: raw.risk,
                roles: raw.roles.into_inner(),
                approve,
                action,
                preview,
                reply: raw.reply,
                schedule,
                location: loc,
            });
        }
    }

    /// Checks a command's `watch` or `then` into its [`Schedule`].
    fn schedule(
        &mut self,
        text: &str,
        cmd: &Location,
        (watch, then): (Option<Spanned<WatchSpec>>, Option<Spanned<ThenSpec>>),
        args: &[ArgSpec],
        risk: Risk,
        approved: bool,
    ) -> Option<Schedule> {
        let at = |span: std::ops::Range<usize>| Location {
            file: cmd.file.clone(),
            line: line_of(text, span.start),
        };
        let (loc, found) = match (watch, then) {
            (None, None) => return None,
            (Some(w), Some(_)) => {
                let l = at(w.span());
                self.problem(
                    &l.file,
                    l.line,
                    "a command has `watch` or `then`, not both".into(),
                );
                return None;
            }
            (Some(w), None) => {
                let l = at(w.span());
                let found = watch_schedule(w.into_inner(), args, risk);
                (l, found)
            }
            (None, Some(t)) => {
                let l = at(t.span());
                let found = then_schedule(t.into_inner(), args, approved);
                (l, found)
            }
        };
        match found {
            Ok(s) => Some(s),
            Err(problems) => {
                for m in problems {
                    self.problem(&loc.file, loc.line, m);
                }
                None
            }
        }
    }

    fn check_roles(&mut self, loc: &Location, what: &str, roles: &[String], known: &BTreeSet<String>) {
        if roles.is_empty() {
            self.problem(
                &loc.file,
                loc.line,
                format!("{what} is empty: name at least one role (or \"anyone\")"),
            );
        }
        for r in roles {
            if !known.contains(r) {
                let list = known.iter().cloned().collect::<Vec<_>>().join(", ");
                self.problem(
                    &loc.file,
                    loc.line,
                    format!("unknown role `{r}` in {what} (known: {list})"),
                );
            }
        }
    }

    fn approve_policy(
        &mut self,
        loc: &Location,
        a: ApproveSpec,
        known: &BTreeSet<String>,
    ) -> Option<ApprovePolicy> {
        let before = self.problems.len();
        self.check_roles(loc, "approve.roles", &a.roles, known);
        if a.roles.iter().any(|r| r == "anyone") {
            self.problem(
                &loc.file,
                loc.line,
                "approve.roles cannot include `anyone`".into(),
            );
        }
        if a.count == 0 {
            self.problem(&loc.file, loc.line, "approve.count must be at least 1".into());
        }
        let ttl = match crate::duration::parse(&a.ttl) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(&loc.file, loc.line, "approve.ttl must be longer than 0s".into());
                None
            }
            Err(e) => {
                self.problem(&loc.file, loc.line, format!("approve.ttl: {e}"));
                None
            }
        };
        match ttl {
            Some(ttl) if self.problems.len() == before => Some(ApprovePolicy {
                roles: a.roles,
                count: a.count,
                ttl,
                break_glass: a.break_glass,
            }),
            _ => None,
        }
    }

    fn arg_spec(&mut self, loc: &Location, name: String, a: RawArg) -> Option<ArgSpec> {
        let kind = self.arg_kind(loc, &name, &a.kind, &a)?;
        if matches!(kind, ArgKind::Bool) && !a.flag {
            self.problem(
                &loc.file,
                loc.line,
                format!("argument `{name}`: kind \"bool\" must be a flag (flag = true)"),
            );
            return None;
        }
        let default = a.default.map(|v| match v {
            toml::Value::String(s) => s,
            other => other.to_string(),
        });
        Some(ArgSpec {
            required: !a.flag && !a.optional && default.is_none(),
            name,
            kind,
            flag: a.flag,
            default,
            help: a.help,
        })
    }

    fn arg_kind(&mut self, loc: &Location, name: &str, kind: &str, a: &RawArg) -> Option<ArgKind> {
        let bad = |b: &mut Self, msg: String| {
            b.problem(&loc.file, loc.line, format!("argument `{name}`: {msg}"));
            None
        };
        match kind {
            "enum" if a.values.is_empty() => bad(self, "kind \"enum\" needs values = [...]".into()),
            "enum" => Some(ArgKind::Enum(a.values.clone())),
            "int" => {
                let (min, max) = (a.min.unwrap_or(i64::MIN), a.max.unwrap_or(i64::MAX));
                if min > max {
                    return bad(self, format!("min {min} is greater than max {max}"));
                }
                Some(ArgKind::Int { min, max })
            }
            "duration" => Some(ArgKind::Duration),
            "id" => Some(ArgKind::Id),
            "ip" => match a
                .protected
                .iter()
                .map(|r| r.parse())
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(protected) => Some(ArgKind::Ip { protected }),
                Err(e) => bad(self, format!("protected: {e}")),
            },
            "bool" => Some(ArgKind::Bool),
            "string" => {
                let pattern = match &a.regex {
                    None => None,
                    Some(r) => match regex::Regex::new(&format!("^(?:{r})$")) {
                        Ok(re) => Some(re),
                        Err(e) => return bad(self, format!("regex does not compile: {e}")),
                    },
                };
                Some(ArgKind::String {
                    max_len: a.max_len.unwrap_or(200),
                    pattern,
                })
            }
            "list" => {
                let inner = a.of.as_deref().unwrap_or("string");
                if inner == "list" || inner == "bool" {
                    return bad(self, format!("a list cannot hold `{inner}`"));
                }
                self.arg_kind(loc, name, inner, a)
                    .map(|k| ArgKind::List(Box::new(k)))
            }
            other => bad(
                self,
                format!("unknown kind `{other}` (use enum, int, duration, string, id, ip, bool or list)"),
            ),
        }
    }

    /// Checks `action` (each step of a seq at its own line, its messages
    /// prefixed with `step n of m: `).
    fn check_action(&mut self, c: &ActionChecks, loc: &Location, action: &Action, prefix: &str) {
        if let Action::Seq(Seq { steps, finally }) = action {
            if steps.is_empty() {
                let msg = format!("{prefix}seq has no steps: list at least one action");
                self.problem(&loc.file, loc.line, msg);
            }
            let count = steps.len() + finally.len();
            if count > MAX_SEQ_STEPS {
                let also = if finally.is_empty() {
                    ""
                } else {
                    ", finally steps included"
                };
                let msg = format!("{prefix}seq has {count} steps (at most {MAX_SEQ_STEPS}{also})");
                self.problem(&loc.file, loc.line, msg);
            }
            for (list, word) in [(steps, "step"), (finally, "finally step")] {
                for (i, step) in list.iter().enumerate() {
                    let step_loc = at_offset(loc, c.text, step.offset);
                    let step_prefix = format!("{prefix}{word} {} of {}: ", i + 1, list.len());
                    self.check_action(c, &step_loc, &step.action, &step_prefix);
                }
            }
            return;
        }
        if let Action::Variants(v) = action {
            for message in variants_problems(v, c.args) {
                self.problem(&loc.file, loc.line, format!("{prefix}{message}"));
            }
            for choice in &v.choices {
                let step = &choice.action;
                let choice_loc = at_offset(loc, c.text, step.offset);
                let choice_prefix = format!("{prefix}{} = {}: ", v.by, choice.value);
                // A variant approved by its own policy may send guarded commands.
                let checks = ActionChecks {
                    guarded: c.guarded || (c.destructive && choice.policy.is_some()),
                    ..*c
                };
                self.check_action(&checks, &choice_loc, &step.action, &choice_prefix);
            }
            return;
        }
        if let Action::Each(step) = action {
            let binds = c.preview.is_some_and(|p| {
                p.items.is_some() || matches!(&p.action, Action::Redis(r) if r.scan.is_some())
            });
            if !binds {
                let msg = format!(
                    "{prefix}each runs once per previewed item: the command needs a preview with items"
                );
                self.problem(&loc.file, loc.line, msg);
            }
            if c.in_each {
                let msg = format!("{prefix}each inside each: an item is one value");
                self.problem(&loc.file, loc.line, msg);
            }
            if !step.action.maintenance_steps().is_empty() {
                let msg = format!("{prefix}each: {WINDOW_ALONE}");
                self.problem(&loc.file, loc.line, msg);
            }
            let inner = ActionChecks { in_each: true, ..*c };
            let step_loc = at_offset(loc, c.text, step.offset);
            self.check_action(&inner, &step_loc, &step.action, &format!("{prefix}each: "));
            return;
        }
        if let Action::Summarize(sum) = action {
            for message in summarize_problems(sum) {
                self.problem(&loc.file, loc.line, format!("{prefix}summarize: {message}"));
            }
            if !sum.of.action.maintenance_steps().is_empty() {
                let msg = format!("{prefix}summarize: {WINDOW_ALONE}");
                self.problem(&loc.file, loc.line, msg);
            }
            let of_loc = at_offset(loc, c.text, sum.of.offset);
            self.check_action(c, &of_loc, &sum.of.action, prefix);
            return;
        }
        let mut found = Vec::new();
        for (t, kind) in action.targets() {
            match self.catalog.targets.get(t) {
                None => found.push(format!("unknown target `{t}`")),
                Some(def) if def.kind != kind => found.push(
                    format!(
                        "target `{t}` is {:?}, but a {} action needs {:?}",
                        def.kind,
                        action.kind(),
                        kind
                    )
                    .to_lowercase(),
                ),
                Some(_) => {}
            }
        }
        if let Action::Process(p) = action {
            found.extend(process_template_problems(
                p,
                c.args,
                c.place,
                c.preview.is_some(),
                &self.catalog.targets,
            ));
        } else {
            for tpl in action.templates() {
                for p in template::placeholders(tpl) {
                    if p.starts_with("preview.") && c.preview.is_some() {
                        continue;
                    }
                    if !c.args.iter().any(|a| a.name == p) {
                        found.push(format!(
                            "template `{tpl}` uses `{{{p}}}`, which is not a defined argument"
                        ));
                    }
                }
            }
        }
        if let Action::Sql(q) = action {
            found.extend(sql_identifier_problems(q, c.args));
        }
        let names_item = |t: &&str| template::placeholders(t).contains(&crate::preview::ITEM);
        if !c.in_each && action.templates().iter().any(names_item) {
            found.push(
                "`{preview.item}` is one previewed item: it may appear only inside an each action".into(),
            );
        }
        found.extend(action_shape_problems(action));
        found.extend(redis_command_problems(action, c.guarded));
        found.extend(preview_use_problems(action, c.preview));
        for message in found {
            self.problem(&loc.file, loc.line, format!("{prefix}{message}"));
        }
    }
}

impl Builder {
    /// Each choice's own `approve` (checked into its `policy`) and `args`:
    /// only where the variants are the command's action, the args optional
    /// ones without a default (so that giving one says which variant it is for).
    fn check_choices(
        &mut self,
        text: &str,
        loc: &Location,
        action: &mut Action,
        args: &[ArgSpec],
        known: &BTreeSet<String>,
    ) {
        let nested = match action {
            Action::Variants(v) => {
                let by = v.by.clone();
                for c in &mut v.choices {
                    let cloc = at_offset(loc, text, c.action.offset);
                    if let Some(spec) = c.approve.clone() {
                        c.policy = self.approve_policy(&cloc, spec, known);
                    }
                    for message in choice_arg_problems(&by, c, args) {
                        self.problem(&cloc.file, cloc.line, format!("{by} = {}: {message}", c.value));
                    }
                }
                v.choices
                    .iter()
                    .flat_map(|c| all_choices(&c.action.action))
                    .collect::<Vec<_>>()
            }
            other => all_choices(other),
        };
        for c in nested
            .into_iter()
            .filter(|c| c.approve.is_some() || !c.args.is_empty())
        {
            let cloc = at_offset(loc, text, c.action.offset);
            let msg = format!(
                "variant `{}`: approve and args of a variant apply only where the variants are the command's action (not inside a seq, a summarize or another variants)",
                c.value
            );
            self.problem(&cloc.file, cloc.line, msg);
        }
    }
}

/// Every choice of a `variants` at any depth of `action`.
fn all_choices(action: &Action) -> Vec<&Choice> {
    match action {
        Action::Seq(seq) => seq.all().flat_map(|s| all_choices(&s.action)).collect(),
        Action::Summarize(s) => all_choices(&s.of.action),
        Action::Variants(v) => v
            .choices
            .iter()
            .flat_map(|c| std::iter::once(c).chain(all_choices(&c.action.action)))
            .collect(),
        _ => vec![],
    }
}

/// A choice's `args` are defined, optional, without a default, and not `by`.
fn choice_arg_problems(by: &str, c: &Choice, args: &[ArgSpec]) -> Vec<String> {
    let mut out = Vec::new();
    for name in &c.args {
        match args.iter().find(|a| &a.name == name) {
            None => out.push(format!("args: `{name}` is not a defined argument")),
            Some(a) if a.name == by => out.push(format!("args: `{name}` picks the variant itself")),
            Some(a) if a.required || a.default.is_some() => out.push(format!(
                "args: `{name}` always has a value (required or defaulted): only an optional argument without a default can belong to one variant"
            )),
            Some(_) => {}
        }
    }
    out
}

/// Where a nested action (a seq step, a choice, what is summarized) is
/// written: its own line, or `loc` when it was built in code (offset 0).
fn at_offset(loc: &Location, text: &str, offset: usize) -> Location {
    Location {
        file: loc.file.clone(),
        line: match offset {
            0 => loc.line,
            offset => line_of(text, offset),
        },
    }
}

/// What checking one command's action needs besides the action.
#[derive(Clone, Copy)]
struct ActionChecks<'a> {
    /// The file's text, for the lines of seq steps.
    text: &'a str,
    args: &'a [ArgSpec],
    /// The command is destructive and needs approval (guarded Redis commands).
    guarded: bool,
    /// The command is destructive (a variant with its own policy is guarded).
    destructive: bool,
    /// The command's profile: its host and config values.
    place: &'a Placement,
    /// The command's preview: its `{preview.*}` values may appear.
    preview: Option<&'a Preview>,
    /// Inside an `each`: `{preview.item}` may appear.
    in_each: bool,
}

/// `logs.app` for `{ logs = { app = "…" } }`; keys of non-string leaves go to `bad`.
fn flatten_values(prefix: &str, t: toml::Table, out: &mut BTreeMap<String, String>, bad: &mut Vec<String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s);
            }
            toml::Value::Table(inner) => flatten_values(&key, inner, out, bad),
            _ => bad.push(key),
        }
    }
}

/// What a placeholder of a process template names.
#[derive(Debug, PartialEq, Eq)]
pub enum ProcessRef<'a> {
    /// A chat argument.
    Arg(&'a str),
    /// A config value of the profile (`logs.app`).
    Value(&'a str),
    /// A config value picked by an enum argument: `logs.<l>` → (`logs`, `l`).
    Keyed(&'a str, &'a str),
    /// `secret.NAME`: the bot's environment variable NAME (or the file named
    /// by `NAME_FILE`). A secret: env values only.
    Secret(&'a str),
    /// `target.NAME` (the whole URL or DSN) or `target.NAME.<part>` (one of
    /// [`TARGET_PARTS`]), after `OPSBOT_TARGET_<NAME>`. Env values only.
    Target(&'a str, Option<&'a str>),
    /// `run.ts`: generated once per run (see `exec`), e.g. `20261202T041500Z`.
    Run(&'a str),
}

/// Parts of a target URL a process env value may name: `{target.cap_db.password}`.
pub const TARGET_PARTS: &[&str] = &["host", "port", "user", "password", "database"];

/// Values generated per run: `{run.ts}`.
pub const RUN_VALUES: &[&str] = &["ts"];

impl ProcessRef<'_> {
    /// A reference whose value must never be shown: a secret or a target's URL or part.
    pub fn is_secret(&self) -> bool {
        matches!(self, ProcessRef::Secret(_) | ProcessRef::Target(..))
    }
}

/// Reads a placeholder of a process template: `prefix.<arg>` is keyed,
/// `secret.*`, `target.*` and `run.*` are reserved, another name with a dot
/// a config value, anything else an argument.
pub fn process_ref(name: &str) -> ProcessRef<'_> {
    if let Some(inner) = name.strip_suffix('>') {
        if let Some((prefix, arg)) = inner.split_once(".<") {
            return ProcessRef::Keyed(prefix, arg);
        }
    }
    if let Some(var) = name.strip_prefix("secret.") {
        return ProcessRef::Secret(var);
    }
    if let Some(rest) = name.strip_prefix("target.") {
        return match rest.split_once('.') {
            Some((t, part)) => ProcessRef::Target(t, Some(part)),
            None => ProcessRef::Target(rest, None),
        };
    }
    if let Some(v) = name.strip_prefix("run.") {
        return ProcessRef::Run(v);
    }
    if name.contains('.') {
        ProcessRef::Value(name)
    } else {
        ProcessRef::Arg(name)
    }
}

/// Placeholders of a process action: arguments must be defined, config
/// values must exist in the profile (every value of a keyed pick too), the
/// working directory names config values only, and on a remote host no free
/// text argument may reach the command.
fn process_template_problems(
    p: &ProcessAction,
    args: &[ArgSpec],
    place: &Placement,
    previewed: bool,
    targets: &BTreeMap<String, Target>,
) -> Vec<String> {
    let mut out = Vec::new();
    let defined = || {
        let names: Vec<&str> = place.values.keys().map(String::as_str).collect();
        if names.is_empty() {
            format!("profile `{}` defines no values", place.profile)
        } else {
            format!("values of profile `{}`: {}", place.profile, names.join(", "))
        }
    };
    for (key, _) in p.env.iter().filter(|(_, v)| holds_secret(v)) {
        if !shell_name(key) {
            out.push(format!(
                "env `{key}` holds a secret: its name must be letters, digits and `_`, not starting with a digit"
            ));
        }
    }
    let templates = p.argv.iter().map(|t| (t, Part::Argv));
    let templates = templates.chain(p.env.values().map(|t| (t, Part::Env)));
    for (tpl, part) in templates.chain(p.cwd.iter().map(|t| (t, Part::Cwd))) {
        let in_cwd = part == Part::Cwd;
        for name in template::placeholders(tpl) {
            let r = process_ref(name);
            if r.is_secret() && part != Part::Env {
                out.push(format!(
                    "template `{tpl}` uses `{{{name}}}`, a secret: secrets and target URLs reach a process only through its env, never its argv or cwd"
                ));
                continue;
            }
            match r {
                ProcessRef::Secret(var) if !shell_name(var) => out.push(format!(
                    "template `{tpl}`: `{{secret.{var}}}` must name an environment variable (letters, digits and `_`)"
                )),
                ProcessRef::Secret(_) => {}
                ProcessRef::Target(t, part) => {
                    if !targets.contains_key(t) {
                        let known: Vec<&str> = targets.keys().map(String::as_str).collect();
                        out.push(format!(
                            "template `{tpl}` uses the unknown target `{t}` (targets: {})",
                            known.join(", ")
                        ));
                    }
                    if let Some(part) = part.filter(|x| !TARGET_PARTS.contains(x)) {
                        out.push(format!(
                            "template `{tpl}`: a target has no part `{part}` (parts: {})",
                            TARGET_PARTS.join(", ")
                        ));
                    }
                }
                ProcessRef::Run(v) if in_cwd || !RUN_VALUES.contains(&v) => out.push(format!(
                    "template `{tpl}` uses `{{run.{v}}}`: the generated values are {} (argv and env only)",
                    RUN_VALUES.iter().map(|r| format!("{{run.{r}}}")).collect::<Vec<_>>().join(", ")
                )),
                ProcessRef::Run(_) => {}
                ProcessRef::Arg(a) => {
                    let Some(spec) = args.iter().find(|s| s.name == a) else {
                        out.push(format!(
                            "template `{tpl}` uses `{{{a}}}`, which is not a defined argument"
                        ));
                        continue;
                    };
                    if in_cwd {
                        out.push(format!(
                            "cwd `{tpl}` uses the argument `{a}`: a working directory comes from config values only"
                        ));
                    } else if place.host.is_some() && free_text(&spec.kind) {
                        out.push(format!(
                            "argument `{a}` is free text and may not reach a command on the remote host {} (use an enum, int, duration, id or a string with a regex)",
                            place.host.as_ref().map(SshHost::label).unwrap_or_default()
                        ));
                    }
                }
                // `{preview.*}` is the preview's (checked with it).
                ProcessRef::Value(v) if previewed && v.starts_with("preview.") => {}
                ProcessRef::Value(v) if !place.values.contains_key(v) => {
                    out.push(format!(
                        "template `{tpl}` uses the unknown config value `{{{v}}}` ({})",
                        defined()
                    ));
                }
                ProcessRef::Value(_) => {}
                ProcessRef::Keyed(prefix, a) => {
                    let choices = match args.iter().find(|s| s.name == a).map(|s| &s.kind) {
                        Some(ArgKind::Enum(values)) => values,
                        _ => {
                            out.push(format!(
                                "template `{tpl}` picks a config value by `{a}`, which is not an enum argument"
                            ));
                            continue;
                        }
                    };
                    for v in choices {
                        if !place.values.contains_key(&format!("{prefix}.{v}")) {
                            out.push(format!(
                                "template `{tpl}`: `{a}` may be `{v}`, but the config value `{{{prefix}.{v}}}` is not defined ({})",
                                defined()
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Where a process template is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Argv,
    Env,
    Cwd,
}

/// An env value naming a secret or a target (`{secret.PW}`, `{target.db.password}`).
pub fn holds_secret(tpl: &str) -> bool {
    template::placeholders(tpl)
        .iter()
        .any(|n| process_ref(n).is_secret())
}

/// A POSIX shell variable name: letters, digits and `_`, not starting with a digit.
pub fn shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Redis commands a preview may send: they read and return at once.
const READ_ONLY_REDIS: &[&str] = &[
    "DBSIZE",
    "TYPE",
    "EXISTS",
    "TTL",
    "PTTL",
    "STRLEN",
    "LLEN",
    "SCARD",
    "ZCARD",
    "HLEN",
    "XLEN",
    "MEMORY",
    "INFO",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL_RO",
];

/// A preview must be a read: a redis scan or read-only command, an sql
/// `SELECT`/`WITH` (which also runs in a read-only transaction), an http GET.
fn preview_problems(p: &Preview) -> Vec<String> {
    let mut out = Vec::new();
    let shown_kind = p.action.kind();
    match &p.action {
        Action::Redis(r) => {
            if r.delete_matching.is_some() {
                out.push("must be read-only: delete_matching deletes (use scan)".into());
            }
            if let Some(name) = r.command.as_ref().and_then(|c| c.first()) {
                let upper = name.to_ascii_uppercase();
                if !READ_ONLY_REDIS.contains(&upper.as_str()) {
                    out.push(format!(
                        "must be read-only: redis {upper} is not one of {}",
                        READ_ONLY_REDIS.join(", ")
                    ));
                }
            }
            if p.items.is_some() {
                out.push("items: a redis preview binds the keys its scan found (leave items out)".into());
            }
        }
        Action::Sql(s) => {
            let q = s.query.trim_start().to_ascii_lowercase();
            if !(q.starts_with("select") || q.starts_with("with")) {
                out.push("must be read-only: an sql preview is a SELECT (or WITH … SELECT)".into());
            }
            if !s.transaction {
                out.push("must be read-only: an sql preview runs in a read-only transaction (leave transaction out)".into());
            }
        }
        Action::Http(h) => {
            if !matches!(h.method.to_ascii_uppercase().as_str(), "GET" | "HEAD") {
                out.push(format!("must be read-only: http {} is not GET", h.method));
            }
        }
        Action::Process(proc) => {
            out.extend(super::read_only::problems(proc));
            out.extend(line_column_problems(p));
        }
        _ => out.push(format!(
            "must be a redis, sql or http read or a read-only process, not a {shown_kind} action"
        )),
    }
    if !p.columns.is_empty() && !matches!(p.action, Action::Process(_)) {
        out.push("columns name the fields of a process preview's lines (leave them out)".into());
    }
    let filters_items = matches!(p.action, Action::Http(_)) && p.items.is_some();
    if !p.only.is_empty() && !filters_items {
        out.push("only filters the items array of an http preview (with items = \"<path>\")".into());
    }
    if p.what.trim().is_empty() {
        out.push("what is empty: name what is counted (keys, queries, rows)".into());
    }
    if p.samples > 20 {
        out.push(format!("samples = {} (at most 20 fit a card)", p.samples));
    }
    out
}

/// A process preview's `items`, `count` and `show` name its line columns.
fn line_column_problems(p: &Preview) -> Vec<String> {
    let columns = p.line_columns();
    let mut out = Vec::new();
    let named = p.items.iter().chain(&p.count).chain(&p.show);
    for name in named.filter(|n| !columns.contains(&n.as_str())) {
        out.push(format!(
            "`{name}` is not a column of the preview's lines (columns: {})",
            columns.join(", ")
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &p.columns {
        if !seen.insert(c) {
            out.push(format!("column `{c}` is named twice"));
        }
    }
    out
}

/// `{preview.items}` in a process action: a whole argv element after the
/// program (one element per item) or a whole env value (one item per
/// line); never part of one, nor the program, nor the working directory.
fn process_item_problems(p: &ProcessAction) -> Vec<String> {
    let names_items = |t: &str| template::placeholders(t).contains(&crate::preview::ITEMS);
    let whole = |t: &str| template::sole_placeholder(t) == Some(crate::preview::ITEMS);
    let mut out = Vec::new();
    for (i, el) in p.argv.iter().enumerate().filter(|(_, el)| names_items(el)) {
        if i == 0 {
            out.push("`{preview.items}` cannot be the program (argv[0])".to_string());
        } else if !whole(el) {
            out.push(format!(
                "argv element `{el}`: `{{preview.items}}` must be a whole element (it becomes one element per item)"
            ));
        }
    }
    for (k, v) in p.env.iter().filter(|(_, v)| names_items(v) && !whole(v)) {
        out.push(format!(
            "env `{k}` = `{v}`: `{{preview.items}}` must be the whole value (the items, one per line)"
        ));
    }
    if p.cwd.as_deref().is_some_and(names_items) {
        out.push(
            "cwd may not name `{preview.items}`: a working directory comes from config values only".into(),
        );
    }
    out
}

/// A string argument without a regex (or a list of them): any text at all.
fn free_text(kind: &ArgKind) -> bool {
    match kind {
        ArgKind::String { pattern, .. } => pattern.is_none(),
        ArgKind::List(inner) => free_text(inner),
        _ => false,
    }
}

/// `{preview.items}` only as an sql parameter or in a process (see
/// [`process_item_problems`]) of a command whose preview binds items; a
/// `delete_matching` needs a preview scanning the same pattern.
fn preview_use_problems(action: &Action, preview: Option<&Preview>) -> Vec<String> {
    let mut out = Vec::new();
    let binds_items = preview
        .is_some_and(|p| p.items.is_some() || matches!(&p.action, Action::Redis(r) if r.scan.is_some()));
    let uses_items = |tpls: Vec<&str>| {
        tpls.iter()
            .any(|t| template::placeholders(t).contains(&crate::preview::ITEMS))
    };
    match action {
        Action::Sql(_) | Action::Process(_) => {
            if uses_items(action.templates()) && !binds_items {
                out.push("`{preview.items}` needs a preview with items = \"<column>\"".into());
            }
            if let Action::Process(p) = action {
                out.extend(process_item_problems(p));
            }
        }
        Action::Seq(_) => {}
        other => {
            if uses_items(other.templates()) {
                out.push(format!(
                    "`{{preview.items}}` may only be an sql parameter or a process argv element or env value, not part of a {} action",
                    other.kind()
                ));
            }
        }
    }
    if let Action::Redis(RedisAction {
        target,
        delete_matching: Some(pattern),
        ..
    }) = action
    {
        let same = preview.is_some_and(|p| {
            matches!(&p.action, Action::Redis(r) if r.target == *target && r.scan.as_deref() == Some(pattern.as_str()))
        });
        if !same {
            out.push(format!(
                "delete_matching needs a preview that scans the same pattern on the same target: preview = {{ what = \"keys\", action = {{ redis = {{ target = \"{target}\", scan = \"{pattern}\" }} }} }}"
            ));
        }
    }
    out
}

/// A `variants` is keyed by an enum argument that always has a value (required
/// or defaulted), and has exactly one action per value of it.
fn variants_problems(v: &Variants, args: &[ArgSpec]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = args.iter().find(|a| a.name == v.by) else {
        return vec![format!(
            "variants are keyed by `{}`, which is not a defined argument",
            v.by
        )];
    };
    let switch = ["true".to_string(), "false".to_string()];
    let values = match &spec.kind {
        ArgKind::Enum(values) => values,
        // A switch left off is `false` (see `Variants::choice`).
        ArgKind::Bool => &switch[..],
        other => {
            return vec![format!(
            "variants are keyed by `{}`, a {} argument: only an enum or a switch has a fixed set of values",
            v.by,
            other.name()
        )]
        }
    };
    if matches!(spec.kind, ArgKind::Enum(_)) && !spec.required && spec.default.is_none() {
        out.push(format!(
            "variants are keyed by `{}`, which may be absent: make it required or give it a default",
            v.by
        ));
    }
    let given = v.values();
    for value in values.iter().filter(|x| !given.contains(&x.as_str())) {
        out.push(format!(
            "variants: `{}` may be `{value}`, which has no action",
            v.by
        ));
    }
    for (i, key) in given.iter().enumerate() {
        if !values.iter().any(|x| x == key) {
            out.push(format!(
                "variants: `{key}` is not a value of `{}` ({})",
                v.by,
                values.join(", ")
            ));
        } else if given[..i].contains(key) {
            out.push(format!("variants: `{key}` has two actions"));
        }
    }
    out
}

/// Shortest and longest wait of a guided step for its confirmation.
const CONFIRM_WITHIN: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(60),
    std::time::Duration::from_secs(24 * 3600),
);

/// Why the guided steps (`internal.confirm`) of a command's `action` cannot
/// run: one anywhere but among the steps of the command's own seq (a
/// finally step, a nested seq's, a variant's choice, each, summarize), a
/// guided seq with finally steps (they would run at every pause), a wait
/// out of bounds. (A guided command's preview and schedule are refused
/// where those are checked.) Pure.
fn guided_problems(action: &Action) -> Vec<String> {
    let guided: Vec<&ConfirmStep> = action
        .leaves()
        .into_iter()
        .filter_map(|a| match a {
            Action::Internal(InternalAction::Confirm(c)) => Some(c),
            _ => None,
        })
        .collect();
    if guided.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (own, finally) = match action {
        Action::Seq(s) => (
            s.steps.iter().filter(|st| st.action.is_confirm()).count(),
            !s.finally.is_empty(),
        ),
        _ => (0, false),
    };
    if guided.len() > own {
        out.push(
            "a confirmation step (`internal.confirm`) may only be a step of the command's own seq (not a finally step, nor inside a nested seq, variants, each or summarize)"
                .to_string(),
        );
    }
    if own > 0 && finally {
        out.push("a seq with confirmation steps has no finally steps: they would run at every pause".into());
    }
    let (min, max) = CONFIRM_WITHIN;
    for c in guided.iter().filter(|c| c.within < min || c.within > max) {
        out.push(format!(
            "confirmation step `{}`: within is {}, give 1m to 24h",
            c.text,
            crate::duration::format(c.within)
        ));
    }
    out
}

/// Most lines or elements a summary keeps.
const SUMMARY_KEEP: usize = 500;

/// A summary reshapes the output at most one way, its regex compiles within
/// its size limit, it keeps a bounded number of lines, and each rule with a
/// threshold names the values it reads.
/// Why a maintenance step cannot stand inside `each` or `summarize`.
const WINDOW_ALONE: &str =
    "a maintenance step stands alone, in a seq or as a variant's choice (its window is opened from the result)";

fn summarize_problems(s: &Summarize) -> Vec<String> {
    let mut out = Vec::new();
    let shapes = [s.lines.is_some(), s.select.is_some(), s.series.is_some()];
    match shapes.iter().filter(|x| **x).count() {
        0 if s.advice.is_empty() && s.pick.is_empty() => {
            out.push("computes nothing: give lines, select, series, advice or pick".into())
        }
        0 | 1 => {}
        _ => out.push("give at most one of lines, select, series".into()),
    }
    if let Some(l) = &s.lines {
        if let Err(e) = l.regex() {
            out.push(format!("lines.matching does not compile: {e}"));
        }
    }
    let kept = [
        s.lines.as_ref().map(|l| l.last),
        s.select.as_ref().map(|x| x.last),
    ];
    if kept.iter().flatten().any(|n| *n > SUMMARY_KEEP) {
        out.push(format!("last is at most {SUMMARY_KEEP}"));
    }
    if s.series.as_ref().is_some_and(|x| x.fields.is_empty()) {
        out.push("series.fields is empty: name the numbers to average".into());
    }
    for r in s.advice.iter().chain(&s.pick) {
        let threshold = r.above.is_some() || r.below.is_some();
        if threshold && r.values.is_empty() {
            out.push(format!(
                "the rule saying {:?} has a threshold but no values",
                r.say
            ));
        }
        if !threshold && !r.values.is_empty() {
            out.push(format!(
                "the rule saying {:?} names values but no above or below",
                r.say
            ));
        }
    }
    out
}

/// Each of an sql action's `identifiers` is an enum argument written in its
/// query as `{name}`.
fn sql_identifier_problems(s: &SqlAction, args: &[ArgSpec]) -> Vec<String> {
    let mut out = Vec::new();
    let named = template::placeholders(&s.query);
    for id in &s.identifiers {
        match args.iter().find(|a| &a.name == id).map(|a| &a.kind) {
            _ if id == DSN_DATABASE => {}
            Some(ArgKind::Enum(_)) => {}
            Some(other) => out.push(format!(
                "identifier `{id}` is a {} argument: an identifier comes only from an enum declared in the catalog",
                other.name()
            )),
            None => out.push(format!("identifier `{id}` is not a defined argument")),
        }
        if !named.contains(&id.as_str()) {
            out.push(format!(
                "identifier `{id}` does not appear in the query as `{{{id}}}`"
            ));
        }
    }
    out
}

/// Problems particular to one kind of action.
fn action_shape_problems(action: &Action) -> Vec<String> {
    let mut out = Vec::new();
    match action {
        Action::Redis(r) => {
            let ops = [r.command.is_some(), r.scan.is_some(), r.delete_matching.is_some()];
            if ops.iter().filter(|x| **x).count() != 1 {
                out.push("a redis action needs exactly one of command, scan, delete_matching".into());
            }
            match r.command.as_deref() {
                Some([]) => out.push("redis command is empty".into()),
                Some([first, ..]) if first.eq_ignore_ascii_case("KEYS") => {
                    out.push("redis KEYS blocks the server: use scan = \"<pattern>\" instead".into())
                }
                _ => {}
            }
        }
        Action::Sql(s) => {
            let highest = sql_placeholders(&s.query);
            if highest != s.params.len() {
                out.push(format!(
                    "sql query uses {highest} parameter(s) but params has {}",
                    s.params.len()
                ));
            }
        }
        Action::Http(h) => {
            if !h.body_secrets.is_empty() && !matches!(h.body, None | Some(serde_json::Value::Object(_))) {
                out.push("body_secrets set fields of a JSON object body".into());
            }
            for (field, var) in &h.body_secrets {
                if h.body.as_ref().is_some_and(|b| b.get(field).is_some()) {
                    out.push(format!(
                        "body field `{field}` is both in body and in body_secrets"
                    ));
                }
                let plain = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !plain {
                    out.push(format!(
                        "body_secrets: `{var}` is not an environment variable name (letters, digits, _)"
                    ));
                }
            }
        }
        Action::Process(p) => match p.argv.first() {
            None => out.push("process argv is empty".into()),
            Some(prog) if !template::placeholders(prog).is_empty() => {
                out.push("the program (argv[0]) must be fixed, not a template".into())
            }
            Some(_) => {}
        },
        Action::Health(h) if h.checks.is_empty() => out.push("health action has no checks".into()),
        _ => {}
    }
    out
}

/// Redis commands a catalog entry may send only when it is `destructive` and
/// needs approval, with why. `EVAL_RO` stays allowed: Redis refuses writes
/// from it.
const GUARDED_REDIS: &[(&str, &str)] = &[
    ("FLUSHALL", "it empties every database"),
    ("FLUSHDB", "it empties the database"),
    ("CONFIG", "it changes or rewrites the server's configuration"),
    ("EVAL", "its script may write anything (use EVAL_RO for reads)"),
    (
        "EVALSHA",
        "its script may write anything (use EVALSHA_RO for reads)",
    ),
    (
        "FCALL",
        "its function may write anything (use FCALL_RO for reads)",
    ),
    ("SCRIPT", "it loads or flushes server-side scripts"),
    ("FUNCTION", "it loads or deletes server-side functions"),
    ("DEBUG", "it can crash, block or corrupt the server"),
    ("SHUTDOWN", "it stops the server"),
    (
        "SELECT",
        "it switches the database of the connection every action shares",
    ),
    ("SWAPDB", "it swaps whole databases"),
];

/// A redis `command` must name a literal command, and the commands of
/// [`GUARDED_REDIS`] need `guarded` (destructive and approved).
fn redis_command_problems(action: &Action, guarded: bool) -> Vec<String> {
    let Action::Redis(RedisAction {
        command: Some(argv), ..
    }) = action
    else {
        return vec![];
    };
    let Some(name) = argv.first() else {
        return vec![];
    };
    if !template::placeholders(name).is_empty() {
        return vec![format!(
            "the redis command name `{name}` must be a literal, not a template (chat values may only be arguments)"
        )];
    }
    let upper = name.to_ascii_uppercase();
    match GUARDED_REDIS.iter().find(|(n, _)| *n == upper) {
        Some((_, why)) if !guarded => vec![format!(
            "redis {upper} is refused here: {why}; only a command with risk = \"destructive\" and an approve policy may send it"
        )],
        _ => vec![],
    }
}

/// The highest `$n` in a SQL text.
fn sql_placeholders(q: &str) -> usize {
    let re = regex::Regex::new(r"\$(\d+)").expect("static regex");
    re.captures_iter(q)
        .filter_map(|c| c[1].parse::<usize>().ok())
        .max()
        .unwrap_or(0)
}

fn valid_words(name: &str) -> bool {
    !name.is_empty()
        && name.split(' ').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// `OPSBOT_TARGET_QUEUE_API` for target `queue_api`.
pub fn target_env_var(name: &str) -> String {
    format!("OPSBOT_TARGET_{}", name.to_uppercase().replace('-', "_"))
}

/// `OPSBOT_HOST_CAP` for profile `cap`.
pub fn host_env_var(profile: &str) -> String {
    format!("OPSBOT_HOST_{}", env_name(profile))
}

/// `OPSBOT_VALUE_CAP_LOGS_APP` for the value `logs.app` of profile `cap`.
pub fn value_env_var(profile: &str, name: &str) -> String {
    format!("OPSBOT_VALUE_{}_{}", env_name(profile), env_name(name))
}

fn env_name(s: &str) -> String {
    s.to_uppercase().replace(['-', '.'], "_")
}

/// Unused targets are not an error, but `opsbot check` mentions them.
pub fn unused_targets(c: &Catalog) -> Vec<&str> {
    let used: BTreeSet<&str> = c
        .commands
        .iter()
        .flat_map(|c| {
            let mut t: Vec<&str> = c.action.targets().into_iter().map(|(t, _)| t).collect();
            t.extend(c.action.process_targets());
            t
        })
        .collect();
    c.targets
        .keys()
        .map(String::as_str)
        .filter(|t| !used.contains(t))
        .collect()
}

/// Groups commands by profile, for listings.
pub fn by_profile(c: &Catalog) -> BTreeMap<&str, Vec<&Command>> {
    let mut m: BTreeMap<&str, Vec<&Command>> = BTreeMap::new();
    for cmd in &c.commands {
        m.entry(cmd.profile.as_str()).or_default().push(cmd);
    }
    m
}

/// A duration of a schedule section, or the problem with it.
fn schedule_duration(
    what: &str,
    v: Option<&str>,
    default: u64,
    problems: &mut Vec<String>,
) -> std::time::Duration {
    match v.map(crate::duration::parse) {
        None => std::time::Duration::from_secs(default),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            problems.push(format!("{what}: {e}"));
            std::time::Duration::from_secs(default)
        }
    }
}

/// The problem when `name` is not a duration flag of the command.
fn duration_flag_problem(section: &str, field: &str, name: &str, args: &[ArgSpec]) -> Option<String> {
    match args.iter().find(|a| a.name == name) {
        None => Some(format!(
            "{section}.{field} names `{name}`, which is not an argument of the command"
        )),
        Some(a) if !matches!(a.kind, ArgKind::Duration) || !a.flag => Some(format!(
            "{section}.{field}: argument `{name}` must be a duration flag (kind = \"duration\", flag = true)"
        )),
        Some(_) => None,
    }
}

fn watch_schedule(w: WatchSpec, args: &[ArgSpec], risk: Risk) -> Result<Schedule, Vec<String>> {
    let mut problems = Vec::new();
    if risk != Risk::Read {
        problems.push("watch: only a read command is run again on its own (risk = \"read\")".into());
    }
    for (field, name) in [("every", &w.every), ("for", &w.lasts)] {
        problems.extend(duration_flag_problem("watch", field, name, args));
    }
    if let Some(name) = &w.stop {
        match args.iter().find(|a| &a.name == name) {
            Some(a) if matches!(a.kind, ArgKind::Bool) => {}
            _ => problems.push(format!(
                "watch.stop: `{name}` must be a switch of the command (kind = \"bool\", flag = true)"
            )),
        }
    }
    let min_every = schedule_duration("watch.min_every", w.min_every.as_deref(), 30, &mut problems);
    let max_for = schedule_duration("watch.max_for", w.max_for.as_deref(), 1800, &mut problems);
    let schedule = Schedule::Watch {
        every: w.every,
        lasts: w.lasts,
        min_every,
        max_for,
        stop: w.stop,
    };
    // The defaults themselves must be within the bounds.
    let defaults: BTreeMap<String, String> = args
        .iter()
        .filter_map(|a| a.default.clone().map(|d| (a.name.clone(), d)))
        .collect();
    problems.extend(
        schedule
            .out_of_bounds(&defaults)
            .map(|m| format!("watch: the defaults are refused: {m}")),
    );
    if problems.is_empty() {
        Ok(schedule)
    } else {
        Err(problems)
    }
}

fn then_schedule(t: ThenSpec, args: &[ArgSpec], needs_approval: bool) -> Result<Schedule, Vec<String>> {
    let mut problems = Vec::new();
    if needs_approval {
        problems.push(
            "then: a follow-up runs without an approval; a command that needs one cannot have it".into(),
        );
    }
    problems.extend(duration_flag_problem("then", "after", &t.after, args));
    if args.iter().any(|a| a.name == t.after && a.default.is_some()) {
        problems.push(format!(
            "then.after: argument `{}` takes its default from then.default (leave its default out)",
            t.after
        ));
    }
    let default = schedule_duration("then.default", Some(&t.default), 1800, &mut problems);
    let min = schedule_duration("then.min", t.min.as_deref(), 60, &mut problems);
    let max = schedule_duration("then.max", Some(&t.max), 86_400, &mut problems);
    if !(min <= default && default <= max) {
        problems.push("then: default must lie between min and max".into());
    }
    if t.set.is_empty() {
        problems.push("then.set is empty: name the arguments the follow-up changes".into());
    }
    for (field, map) in [("when", &t.when), ("set", &t.set)] {
        for (name, value) in map {
            match args.iter().find(|a| &a.name == name) {
                None => problems.push(format!(
                    "then.{field} names `{name}`, which is not an argument of the command"
                )),
                Some(ArgSpec {
                    kind: ArgKind::Enum(values),
                    ..
                }) if !values.contains(value) => problems.push(format!(
                    "then.{field}: `{value}` is not a value of `{name}` ({})",
                    values.join(", ")
                )),
                Some(_) => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(Schedule::Then {
            after: t.after,
            default,
            min,
            max,
            when: t.when,
            set: t.set,
        })
    } else {
        Err(problems)
    }
}
