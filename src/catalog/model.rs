//! The catalog's data model: targets, commands, typed arguments and actions.
//! Built by `catalog::load`; read by the parser, help, authorization and executors.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Where a definition came from, for `file:line` messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The whole runbook catalog: every target and every command of every profile.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub targets: BTreeMap<String, Target>,
    pub commands: Vec<Command>,
}

impl Catalog {
    /// Commands whose chat words are exactly `name` (e.g. `"queue retry"`), any profile.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Command> + 'a {
        self.commands.iter().filter(move |c| c.name == name)
    }

    /// The command `name` of `profile`.
    pub fn get(&self, profile: &str, name: &str) -> Option<&Command> {
        self.commands
            .iter()
            .find(|c| c.profile == profile && c.name == name)
    }

    /// The targets without a URL (shipped unset, and no
    /// `OPSBOT_TARGET_<NAME>` given), each with the commands whose action
    /// or preview calls it: those are refused until it is set.
    pub fn unset_targets(&self) -> Vec<(&Target, Vec<&Command>)> {
        self.targets
            .values()
            .filter(|t| !t.is_set())
            .map(|t| {
                let users = self.commands.iter().filter(|c| c.calls(&t.name)).collect();
                (t, users)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Http,
    Redis,
    Sql,
    /// A MongoDB URL: no executor talks to it; process actions take it (or
    /// its parts) into their env (`{target.scrape_mongo}`) for mongosh.
    Mongo,
}

/// Something an action talks to. `url` is the base URL (http) or DSN (redis, sql),
/// already overridden by `OPSBOT_TARGET_<NAME>` when that is set.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(skip)]
    pub name: String,
    pub kind: TargetKind,
    /// The base URL (http) or DSN (redis, sql, mongo). Absent (or empty):
    /// the target is shipped unset, for a system only the operator knows
    /// (its request contract documented beside it); every action on it is
    /// refused, naming `OPSBOT_TARGET_<NAME>`, until that variable is set.
    #[serde(default)]
    pub url: String,
    /// Per-call timeout; `10s` when absent.
    #[serde(default, with = "crate::duration::serde_str::opt_field")]
    #[schemars(
        with = "Option<super::schema::DurationText>",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Extra HTTP headers; a value `env:NAME` (or `<literal> env:NAME`, e.g.
    /// `Bearer env:DEEPSEEK_API_KEY`) takes NAME from the environment (or the
    /// file named by `NAME_FILE`), and that value is a secret (redacted from
    /// every output).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Redis: key prefixes that pattern commands may touch (`gemini:`, `project:`).
    #[serde(default)]
    pub key_prefixes: Vec<String>,
    #[serde(skip)]
    pub location: Option<Location>,
}

impl Target {
    /// Whether the target has a URL (see [`Target::url`]).
    pub fn is_set(&self) -> bool {
        !self.url.trim().is_empty()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(10))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Read,
    Write,
    Destructive,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Read => "read",
            Risk::Write => "write",
            Risk::Destructive => "destructive",
        }
    }
}

/// A typed argument of a command.
#[derive(Debug, Clone)]
pub struct ArgSpec {
    pub name: String,
    pub kind: ArgKind,
    /// `--name value` (or `--name` for bool) instead of a positional word.
    pub flag: bool,
    /// A positional that must be given (flags are never required).
    pub required: bool,
    /// Value used when the argument is absent.
    pub default: Option<String>,
    pub help: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ArgKind {
    Enum(Vec<String>),
    Int {
        min: i64,
        max: i64,
    },
    Duration,
    /// Free text, at most `max_len` chars, optionally matching `pattern` (anchored).
    String {
        max_len: usize,
        pattern: Option<regex::Regex>,
    },
    /// `^[A-Za-z0-9_.:-]{1,64}$`: job ids, keys, correlation ids.
    Id,
    /// One public IPv4 or IPv6 address, outside `protected` (`crate::ip`).
    Ip {
        protected: Vec<crate::ip::Cidr>,
    },
    /// A switch: `--errors`.
    Bool,
    /// Comma-separated values of the inner kind.
    List(Box<ArgKind>),
}

impl ArgKind {
    /// How the value is shown in usage lines: `<queue>`, `<int 1..50>`.
    pub fn placeholder(&self) -> String {
        match self {
            ArgKind::Enum(v) => v.join("|"),
            ArgKind::Int { min, max } => format!("int {min}..{max}"),
            ArgKind::Duration => "duration".into(),
            ArgKind::String { .. } => "text".into(),
            ArgKind::Id => "id".into(),
            ArgKind::Ip { .. } => "ip".into(),
            ArgKind::Bool => String::new(),
            ArgKind::List(inner) => format!("{},…", inner.placeholder()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ArgKind::Enum(_) => "enum",
            ArgKind::Int { .. } => "int",
            ArgKind::Duration => "duration",
            ArgKind::String { .. } => "string",
            ArgKind::Id => "id",
            ArgKind::Ip { .. } => "ip",
            ArgKind::Bool => "bool",
            ArgKind::List(_) => "list",
        }
    }
}

/// Two-person rule: `count` distinct people holding one of `roles`, none of them
/// the requester, within `ttl`.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovePolicy {
    pub roles: Vec<String>,
    pub count: u32,
    #[serde(rename = "ttl_secs", serialize_with = "ser_secs")]
    pub ttl: Duration,
    /// `--break-glass` may skip the approval during an open rank-1 incident
    /// of the command's profile (approvers are paged, the run is flagged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
}

/// `approve = { roles = ["sre"], count = 1, ttl = "15m", break_glass = true }`
/// as written in a catalog file; the loader checks it into an [`ApprovePolicy`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveSpec {
    /// Roles of which an approver holds one (not `anyone`).
    pub roles: Vec<String>,
    /// How many distinct people, none of them the requester, must approve.
    #[serde(default = "one")]
    pub count: u32,
    /// How long the approval stays open.
    #[serde(default = "fifteen_minutes")]
    #[schemars(with = "super::schema::DurationText")]
    pub ttl: String,
    /// `--break-glass` may skip the approval during an open rank-1 incident
    /// of the command's profile (approvers are paged, the run is flagged).
    #[serde(default)]
    pub break_glass: bool,
}

fn one() -> u32 {
    1
}

fn fifteen_minutes() -> String {
    "15m".into()
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// What a command does. Values from chat reach an action only through
/// templates (`{arg}`), which each executor escapes for its own medium.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    Http(HttpAction),
    Redis(RedisAction),
    Sql(SqlAction),
    Process(ProcessAction),
    Health(HealthAction),
    /// Ordered steps, each another action: `seq = [{ http = … }, { sql = … }]`,
    /// or with cleanup steps `seq = { steps = [ … ], finally = [ … ] }`.
    /// Runs the steps in order and stops at the first failure; the `finally`
    /// steps run after them either way.
    Seq(Seq),
    /// Answered by opsbot itself; nothing is sent to any target.
    Internal(InternalAction),
    /// One action per value of an enum argument: `variants = { by = "k",
    /// choices = [{ value = "deps", action = { process = … } }, …] }`.
    Variants(Variants),
    /// Another action, whose output the bot summarizes (counts, filters,
    /// averages, advice): `summarize = { of = { process = … }, lines = { matching = "…" } }`.
    Summarize(Summarize),
    /// Another action run once per previewed item, `{preview.item}` being
    /// that item: `each = { http = { method = "PUT", path = "/jobs/{preview.item}/stop", … } }`.
    /// Every item is tried; the result lists each one's.
    Each(Box<Step>),
}

/// A summary computed by the bot over the output of `of` (pure: see
/// `exec::summarize`). At most one of `lines`, `select`, `series` reshapes
/// the output; `advice` and `pick` then read numbers from the result.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summarize {
    pub of: Box<Step>,
    /// The output's lines: those matching, counted, the last few kept.
    #[serde(default)]
    pub lines: Option<LinesRule>,
    /// The elements of a JSON array whose field equals a value.
    #[serde(default)]
    pub select: Option<SelectRule>,
    /// Average and peak of numeric fields over a JSON array.
    #[serde(default)]
    pub series: Option<SeriesRule>,
    /// Every rule that holds says its text; a rule without a threshold says
    /// its text when none of the others held.
    #[serde(default)]
    pub advice: Vec<Rule>,
    /// The text of the first rule that holds (a rule without a threshold
    /// always holds): `cpu or memory above 80 → 2`.
    #[serde(default)]
    pub pick: Vec<Rule>,
}

/// `lines = { matching = "authentication.*false", last = 20 }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinesRule {
    /// A regex (size-limited); every non-empty line when absent.
    #[serde(default)]
    pub matching: Option<String>,
    /// How many of the last matching lines are kept (none: only counted).
    #[serde(default)]
    pub last: usize,
}

/// Longest compiled form of a summary's regex.
pub const SUMMARY_REGEX_BYTES: usize = 1 << 20;

impl LinesRule {
    /// The compiled (size-limited) `matching`, `None` when absent.
    pub fn regex(&self) -> Result<Option<regex::Regex>, regex::Error> {
        self.matching
            .as_deref()
            .map(|m| {
                regex::RegexBuilder::new(m)
                    .size_limit(SUMMARY_REGEX_BYTES)
                    .build()
            })
            .transpose()
    }
}

/// `select = { array = "top_errors", field = "category", equals = "rate_limiting" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectRule {
    /// Dotted path to the array (`data.errors`).
    pub array: String,
    pub field: String,
    pub equals: String,
    /// How many of the last matching elements are kept (20 when absent).
    #[serde(default = "twenty")]
    pub last: usize,
}

fn twenty() -> usize {
    20
}

/// `series = { array = "metrics", fields = ["cpu_percent", "memory_percent"] }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesRule {
    pub array: String,
    pub fields: Vec<String>,
}

/// `{ values = ["cpu_percent", "memory_percent"], above = 80, say = "2" }`:
/// holds when the highest of the values is above `above` (one of them is) or
/// below `below` (all of them are). Values are dotted paths into the summary.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub above: Option<f64>,
    #[serde(default)]
    pub below: Option<f64>,
    pub say: String,
}

/// The action of each value of the argument `by` (an enum, or a switch with
/// the values `true` and `false`); every value has one.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variants {
    /// The argument whose value picks the action.
    pub by: String,
    pub choices: Vec<Choice>,
}

/// What one value of a `variants` argument runs, and (when the variants are
/// the command's action) who approves it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// The value of `by` (`true` / `false` for a switch).
    pub value: String,
    pub action: Step,
    /// This value's own approval policy, in place of the command's: the two
    /// forms of `/rollback` (`--emergency` or not) need other approvers.
    #[serde(default)]
    pub approve: Option<ApproveSpec>,
    /// Arguments only this value takes: given with another value, the
    /// request is refused (`--disable` goes with `--emergency`).
    #[serde(default)]
    pub args: Vec<String>,
    /// `approve`, checked (filled when the catalog is loaded).
    #[serde(skip)]
    pub policy: Option<ApprovePolicy>,
}

impl Variants {
    /// The action for the value of `by` in `args`.
    pub fn choose(&self, args: &BTreeMap<String, String>) -> Option<&Action> {
        self.choice(args).map(|c| &c.action.action)
    }

    /// The choice for the value of `by` in `args`. An absent `by` is a switch
    /// left off: `false` (an enum key is required or defaulted, so parsed
    /// arguments always carry it).
    pub fn choice(&self, args: &BTreeMap<String, String>) -> Option<&Choice> {
        let value = args.get(&self.by).map_or("false", String::as_str);
        self.choices.iter().find(|c| c.value == value)
    }

    /// The values that have a choice, in order.
    pub fn values(&self) -> Vec<&str> {
        self.choices.iter().map(|c| c.value.as_str()).collect()
    }
}

/// Bot-native actions.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum InternalAction {
    /// A link to a page of an http target: `internal = { link = { target =
    /// "queue_api", path = "/admin/queues" } }` answers the target's base URL
    /// (without user name or password) joined with `path`, whose `{arg}`s are
    /// percent-encoded path segments as in an http action.
    Link { target: String, path: String },
    /// The command's profile's maintenance window: the silence of kind
    /// `maintenance` that `/alerts maintenance <profile>` sets (alerts
    /// stored and shown, no pages). The executor only checks and describes
    /// it; the engine opens or ends the window in the transaction that
    /// records the execution: `internal = { maintenance = "close" }`.
    Maintenance(MaintenanceStep),
    /// A guided step: the seq stops here until a person confirms, in the
    /// thread and within `within`, that they did `text`; the steps after it
    /// run only then: `internal = { confirm = { text = "Promote the standby",
    /// within = "1h" } }`. Only a step of a command's own seq (not nested,
    /// finally, a variant's choice, each, summarize or a preview). The
    /// engine does not run guided seqs yet, so the loader refuses every
    /// command that holds one (issue #17, DR-5).
    Confirm(ConfirmStep),
}

/// What a guided step asks a person to do, and for how long it waits.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmStep {
    /// What the person does by hand before confirming (shown in the thread;
    /// `{arg}`s are filled in).
    pub text: String,
    /// How long the confirmation may take: `"1h"`.
    #[serde(with = "crate::duration::serde_str")]
    #[schemars(with = "super::schema::DurationText")]
    pub within: Duration,
}

/// What a maintenance step does to its profile's window.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum MaintenanceStep {
    /// Opens a window lasting `lasts` (a duration template, `"{for}"`,
    /// 1 minute to 7 days): from now, or from `from` (a template rendering
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`, UTC; a day alone starts at 00:00):
    /// `{ open = { lasts = "{len}", from = "{d}T{at}" } }`. A window that
    /// would already be over is not opened (the reply says so).
    Open {
        lasts: String,
        #[serde(default)]
        from: Option<String>,
    },
    /// Ends the profile's active window(s) now; none on is not a failure.
    Close,
    /// Refuses (so nothing after it in a seq runs) unless the profile's
    /// window is on when the action is executed.
    Require,
}

impl MaintenanceStep {
    /// Its templates, for validation.
    pub fn templates(&self) -> Vec<&str> {
        match self {
            MaintenanceStep::Open { lasts, from } => {
                std::iter::once(lasts.as_str()).chain(from.as_deref()).collect()
            }
            MaintenanceStep::Close | MaintenanceStep::Require => vec![],
        }
    }
}

/// Most steps of one `seq`.
pub const MAX_SEQ_STEPS: usize = 20;

/// Deepest nesting of `seq` actions: a seq may hold seqs of plain actions.
pub const MAX_SEQ_DEPTH: usize = 2;

/// The steps of a `seq` and its cleanup. Written as a list of steps, or as
/// `{ steps = [ … ], finally = [ … ] }`.
#[derive(Debug, Clone, Default)]
pub struct Seq {
    pub steps: Vec<Step>,
    /// Run after `steps` whether they succeeded or not (each of them, in
    /// order, even when an earlier one failed): a cleanup such as dropping
    /// the scratch database a restore check created.
    pub finally: Vec<Step>,
}

impl Seq {
    /// `steps` then `finally`.
    pub fn all(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(&self.finally)
    }

    /// [`Seq::all`], to change.
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut Step> {
        self.steps.iter_mut().chain(&mut self.finally)
    }
}

impl From<Vec<Step>> for Seq {
    fn from(steps: Vec<Step>) -> Self {
        Seq {
            steps,
            finally: Vec::new(),
        }
    }
}

/// A list of steps, or a table `{ steps, finally }`; read field by field
/// (not through an untagged enum) so each step keeps its TOML span.
impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = Seq;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of steps, or a table with `steps` and `finally`")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut list: A) -> Result<Seq, A::Error> {
                let mut steps = Vec::new();
                while let Some(step) = list.next_element::<Step>()? {
                    steps.push(step);
                }
                Ok(steps.into())
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Seq, A::Error> {
                let (mut steps, mut finally) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "steps" => &mut steps,
                        "finally" => &mut finally,
                        other => return Err(serde::de::Error::unknown_field(other, &["steps", "finally"])),
                    };
                    if slot.is_some() {
                        return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    *slot = Some(map.next_value::<Vec<Step>>()?);
                }
                Ok(Seq {
                    steps: steps.ok_or_else(|| serde::de::Error::missing_field("steps"))?,
                    finally: finally.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(Form)
    }
}

impl JsonSchema for Seq {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Seq".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let steps = generator.subschema_for::<Vec<Step>>();
        schemars::json_schema!({
            "description": "Steps run in order, stopping at the first failure: a list, or a table whose `finally` steps run after `steps` whether they succeeded or failed.",
            "oneOf": [
                steps,
                {
                    "type": "object",
                    "properties": { "steps": steps, "finally": steps },
                    "required": ["steps"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// One step of a `seq`, with where it is written in its catalog file. Read
/// from TOML only (its offset comes from the TOML deserializer's spans).
#[derive(Debug, Clone)]
pub struct Step {
    pub action: Action,
    /// Byte offset of the step in its file (for `file:line`); 0 when built in code.
    pub offset: usize,
}

impl From<Action> for Step {
    fn from(action: Action) -> Self {
        Step { action, offset: 0 }
    }
}

/// A step is written as an action (its offset comes from where it is).
impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Action>()
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<Action>::deserialize(d)?;
        Ok(Step {
            offset: spanned.span().start,
            action: spanned.into_inner(),
        })
    }
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Http(_) => "http",
            Action::Redis(_) => "redis",
            Action::Sql(_) => "sql",
            Action::Process(_) => "process",
            Action::Health(_) => "health",
            Action::Seq(_) => "seq",
            Action::Internal(_) => "internal",
            Action::Variants(_) => "variants",
            Action::Summarize(_) => "summarize",
            Action::Each(_) => "each",
        }
    }

    /// The actions that do the work, in order: the action itself, or every
    /// step of a `seq` (nested seqs flattened).
    pub fn leaves(&self) -> Vec<&Action> {
        match self {
            Action::Seq(seq) => seq.all().flat_map(|s| s.action.leaves()).collect(),
            Action::Variants(v) => v.choices.iter().flat_map(|c| c.action.action.leaves()).collect(),
            Action::Summarize(s) => s.of.action.leaves(),
            Action::Each(s) => s.action.leaves(),
            other => vec![other],
        }
    }

    /// The maintenance steps among [`leaves`](Action::leaves).
    pub fn maintenance_steps(&self) -> Vec<&MaintenanceStep> {
        self.leaves()
            .into_iter()
            .filter_map(|a| match a {
                Action::Internal(InternalAction::Maintenance(m)) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Whether this is a guided step (`internal.confirm`).
    pub fn is_confirm(&self) -> bool {
        matches!(self, Action::Internal(InternalAction::Confirm(_)))
    }

    /// [`leaves`](Action::leaves), to change: filled in when the catalog is loaded.
    pub fn leaves_mut(&mut self) -> Vec<&mut Action> {
        match self {
            Action::Seq(seq) => seq.all_mut().flat_map(|s| s.action.leaves_mut()).collect(),
            Action::Variants(v) => v
                .choices
                .iter_mut()
                .flat_map(|c| c.action.action.leaves_mut())
                .collect(),
            Action::Summarize(s) => s.of.action.leaves_mut(),
            Action::Each(s) => s.action.leaves_mut(),
            other => vec![other],
        }
    }

    /// Every process action (the action itself or a step at any depth), to
    /// fill in its placement.
    pub fn processes_mut(&mut self) -> Vec<&mut ProcessAction> {
        self.leaves_mut()
            .into_iter()
            .filter_map(|a| match a {
                Action::Process(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Every http action (the action itself or a step at any depth), to
    /// fill in the command's list arguments.
    pub fn https_mut(&mut self) -> Vec<&mut HttpAction> {
        self.leaves_mut()
            .into_iter()
            .filter_map(|a| match a {
                Action::Http(h) => Some(h),
                _ => None,
            })
            .collect()
    }

    /// Targets named by process env values (`{target.cap_db.password}`), at any depth.
    pub fn process_targets(&self) -> Vec<&str> {
        match self {
            Action::Process(p) => p
                .env
                .values()
                .flat_map(|v| crate::template::placeholders(v))
                .filter_map(|n| match crate::catalog::process_ref(n) {
                    crate::catalog::ProcessRef::Target(t, _) => Some(t),
                    _ => None,
                })
                .collect(),
            Action::Seq(seq) => seq.all().flat_map(|s| s.action.process_targets()).collect(),
            Action::Variants(v) => v
                .choices
                .iter()
                .flat_map(|c| c.action.action.process_targets())
                .collect(),
            Action::Summarize(s) => s.of.action.process_targets(),
            Action::Each(s) => s.action.process_targets(),
            _ => vec![],
        }
    }

    /// How deeply `seq`s nest: 0 for a plain action, 1 for a seq of plain
    /// actions (a `variants` adds no level: one of its choices runs).
    pub fn depth(&self) -> usize {
        match self {
            Action::Seq(seq) => 1 + seq.all().map(|s| s.action.depth()).max().unwrap_or(0),
            Action::Variants(v) => v
                .choices
                .iter()
                .map(|c| c.action.action.depth())
                .max()
                .unwrap_or(0),
            Action::Summarize(s) => s.of.action.depth(),
            Action::Each(s) => s.action.depth(),
            _ => 0,
        }
    }

    /// Every template string of the action (and of every step), for validation.
    pub fn templates(&self) -> Vec<&str> {
        match self {
            Action::Seq(seq) => seq.all().flat_map(|s| s.action.templates()).collect(),
            Action::Variants(v) => v
                .choices
                .iter()
                .flat_map(|c| c.action.action.templates())
                .collect(),
            Action::Summarize(s) => s.of.action.templates(),
            Action::Each(s) => s.action.templates(),
            Action::Http(h) => {
                let mut v: Vec<&str> = vec![h.path.as_str()];
                v.extend(h.query.values().map(String::as_str));
                if let Some(b) = &h.body {
                    collect_json_strings(b, &mut v);
                }
                v
            }
            Action::Redis(r) => r
                .command
                .iter()
                .flatten()
                .map(String::as_str)
                .chain(r.scan.as_deref())
                .chain(r.delete_matching.as_deref())
                .collect(),
            Action::Sql(s) => s.params.iter().map(String::as_str).collect(),
            Action::Process(p) => p
                .argv
                .iter()
                .chain(p.env.values())
                .chain(&p.cwd)
                .map(String::as_str)
                .collect(),
            Action::Health(_) => vec![],
            Action::Internal(InternalAction::Link { path, .. }) => vec![path.as_str()],
            Action::Internal(InternalAction::Maintenance(m)) => m.templates(),
            Action::Internal(InternalAction::Confirm(c)) => vec![c.text.as_str()],
        }
    }

    /// Targets the action (and every step) uses, for validation.
    pub fn targets(&self) -> Vec<(&str, TargetKind)> {
        match self {
            Action::Seq(seq) => seq.all().flat_map(|s| s.action.targets()).collect(),
            Action::Variants(v) => v.choices.iter().flat_map(|c| c.action.action.targets()).collect(),
            Action::Summarize(s) => s.of.action.targets(),
            Action::Each(s) => s.action.targets(),
            Action::Http(h) => vec![(h.target.as_str(), TargetKind::Http)],
            Action::Redis(r) => vec![(r.target.as_str(), TargetKind::Redis)],
            Action::Sql(s) => vec![(s.target.as_str(), TargetKind::Sql)],
            Action::Process(_) => vec![],
            Action::Health(h) => h
                .checks
                .iter()
                .map(|c| (c.target.as_str(), TargetKind::Http))
                .collect(),
            Action::Internal(InternalAction::Link { target, .. }) => {
                vec![(target.as_str(), TargetKind::Http)]
            }
            Action::Internal(InternalAction::Maintenance(_) | InternalAction::Confirm(_)) => vec![],
        }
    }
}

fn collect_json_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_json_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_json_strings(x, out)),
        _ => {}
    }
}

/// `http = { method = "POST", target = "queue_api", path = "/api/queue/{queue}/pause" }`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    #[serde(default = "default_method")]
    pub method: String,
    pub target: String,
    /// Path template; each `{arg}` is percent-encoded as one path segment.
    pub path: String,
    /// Query parameters (templates); a parameter whose only placeholder is an
    /// absent optional argument is left out.
    #[serde(default)]
    pub query: IndexMap<String, String>,
    /// JSON body; `{arg}` inside string values is substituted as JSON text.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Accepted statuses; any 2xx when empty.
    #[serde(default)]
    pub expect: Vec<u16>,
    /// Top-level body fields whose value is a secret from the environment
    /// (or the file named by `<VAR>_FILE`): `{ confirmationToken =
    /// "CAP_ADVANCE_TOKEN" }`. Set only when the request is sent, never
    /// typed in chat nor shown (rendered as `[secret VAR]`, redacted from
    /// every output).
    #[serde(default)]
    pub body_secrets: BTreeMap<String, String>,
    /// The command's list arguments: a body string that is exactly one of
    /// their placeholders (`"{disable}"`) becomes a JSON array of its
    /// values. Filled when the catalog is loaded.
    #[serde(skip)]
    pub lists: BTreeSet<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// Exactly one of `command`, `scan`, `delete_matching`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisAction {
    pub target: String,
    /// A command as argv: `["INFO", "{section}"]`. Each element is one argument.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Lists keys matching a pattern with SCAN (never KEYS), up to `limit`.
    #[serde(default)]
    pub scan: Option<String>,
    /// Deletes keys matching a pattern: SCAN, then UNLINK in batches of 500.
    #[serde(default)]
    pub delete_matching: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    /// One deadline for the whole action (connecting, every SCAN page and
    /// UNLINK batch); the target's timeout when absent.
    #[serde(default, with = "crate::duration::serde_str::opt_field")]
    #[schemars(
        with = "Option<super::schema::DurationText>",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

/// `sql = { target = "queue_db", query = "SELECT … WHERE x = $1", params = ["{x}"] }`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlAction {
    pub target: String,
    /// Fixed SQL text with `$n` placeholders; chat values are only ever bound.
    pub query: String,
    #[serde(default)]
    pub params: Vec<String>,
    #[serde(default, with = "crate::duration::serde_str::opt_field")]
    #[schemars(
        with = "Option<super::schema::DurationText>",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// `false`: the statement runs outside a transaction, on a connection of
    /// its own that is closed afterwards (`VACUUM`, `REINDEX … CONCURRENTLY`,
    /// `CREATE INDEX CONCURRENTLY` refuse to run inside one).
    #[serde(default = "yes")]
    pub transaction: bool,
    /// Enum arguments the query names as `{arg}` (statements such as VACUUM
    /// take no `$n` parameters): each value is written into the text as a
    /// quoted identifier (`"messages"`), an absent optional one as nothing.
    /// Only enum values declared in the catalog can get there. The name
    /// [`DSN_DATABASE`] is the database of the target's DSN (`REINDEX
    /// DATABASE {dsn.database}`).
    #[serde(default)]
    pub identifiers: Vec<String>,
}

/// The identifier of an sql action that names the database of its target's DSN.
pub const DSN_DATABASE: &str = "dsn.database";

fn yes() -> bool {
    true
}

/// `process = { argv = ["pm2", "restart", "{app}"], timeout = "30s" }`: no shell.
///
/// Templates may name the command's arguments (`{lines}`), the profile's
/// config values (`{logs.app}`, `{app.dir}`) and a config value picked by an
/// enum argument (`{logs.<l>}` is `logs.app` when `l` is `app`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessAction {
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory: config values only (`"{app.dir}"`), never an argument.
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default, with = "crate::duration::serde_str::opt_field")]
    #[schemars(
        with = "Option<super::schema::DurationText>",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Where it runs and the config values it may use: filled from the
    /// command's profile when the catalog is loaded.
    #[serde(skip)]
    pub place: Placement,
}

/// The profile's side of a process action: its host and config values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub profile: String,
    /// `None`: the bot's own host.
    pub host: Option<SshHost>,
    /// Config value name (`logs.app`) → value; only from catalog files and
    /// `OPSBOT_VALUE_<PROFILE>_<NAME>`, never from chat.
    pub values: BTreeMap<String, String>,
}

/// An SSH destination: `ssh://user@host[:port]`, and the key to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    pub user: String,
    pub host: String,
    pub port: Option<u16>,
    /// `-i <key>`: a private key file on the bot's host.
    pub key: Option<String>,
}

impl SshHost {
    /// Parses `ssh://user@host[:port]`. User and host are letters, digits
    /// and `. _ -`, not starting with `-` (ssh would read an option).
    pub fn parse(url: &str, key: Option<String>) -> Result<SshHost, String> {
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("host `{url}` must look like ssh://user@host[:port] (or be \"local\")"))?;
        let (user, hostport) = rest
            .split_once('@')
            .ok_or_else(|| format!("host `{url}` needs a user: ssh://user@host[:port]"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("host `{url}`: port `{p}` is not a number from 1 to 65535"))?;
                (h, Some(port))
            }
            None => (hostport, None),
        };
        let word = |w: &str| {
            !w.is_empty()
                && !w.starts_with('-')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !word(user) || !word(host) {
            return Err(format!(
                "host `{url}`: user and host must be letters, digits, `.`, `_` or `-`, not starting with `-`"
            ));
        }
        if let Some(k) = &key {
            if k.is_empty() || k.starts_with('-') {
                return Err(format!("ssh_key `{k}` must be a file path"));
            }
        }
        Ok(SshHost {
            user: user.to_string(),
            host: host.to_string(),
            port,
            key,
        })
    }

    /// `user@host:port`, for messages.
    pub fn label(&self) -> String {
        match self.port {
            Some(p) => format!("{}@{}:{p}", self.user, self.host),
            None => format!("{}@{}", self.user, self.host),
        }
    }
}

/// Calls every listed health endpoint concurrently and classifies each component.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthAction {
    pub checks: Vec<HealthCheck>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub component: String,
    pub target: String,
    pub path: String,
    /// Slower than this counts as degraded (default 1s).
    #[serde(default, with = "crate::duration::serde_str::opt_field")]
    #[schemars(
        with = "Option<super::schema::DurationText>",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow: Option<Duration>,
}

/// A destructive command's preview: a read-only action run when the
/// approval is requested, whose count, samples and item set are stored with
/// the approval, shown on its card and handed to the action at execution.
///
/// ```toml
/// preview = { what = "keys", action = { redis = { target = "queue_redis", scan = "{pattern}", limit = 10000 } } }
/// preview = { what = "queries", items = "pid", action = { sql = { target = "queue_db", query = "SELECT pid …" } } }
/// preview = { what = "files", items = "line", action = { process = { argv = ["find", "{logs.dir}", "-print"] } } }
/// ```
///
/// A process preview runs a read-only program (see `catalog::load`); each
/// non-empty line of its stdout is a row, split on tabs into `columns`
/// (one column `line` when none are named), read as an sql preview's rows.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    /// What is counted, plural: `keys`, `queries`, `rows`.
    pub what: String,
    /// A read action: redis `scan` or a read-only command, sql `SELECT`/`WITH`
    /// (run in a read-only transaction), http `GET`.
    pub action: Action,
    /// The item ids execution is bound to: an sql column, or an http JSON
    /// path to an array of ids (a redis `scan` always binds its keys).
    #[serde(default)]
    pub items: Option<String>,
    /// Where the count is, when it is not the number of rows or keys: an sql
    /// column of the first row, or an http JSON path (`data.queued`).
    #[serde(default)]
    pub count: Option<String>,
    /// sql columns or http fields shown per sample (all columns when empty).
    #[serde(default)]
    pub show: Vec<String>,
    /// How many samples the card shows (5 when absent).
    #[serde(default = "five")]
    pub samples: usize,
    /// An http preview's items: only the array's elements whose field is
    /// one of the values (`only = { state = ["running", "queued"] }`).
    #[serde(default)]
    pub only: BTreeMap<String, Vec<String>>,
    /// A process preview: the names of the tab-separated fields of each
    /// output line (`["time", "size", "path"]`); empty: one column `line`.
    #[serde(default)]
    pub columns: Vec<String>,
}

/// The column of a process preview's line when it names no columns.
pub const LINE_COLUMN: &str = "line";

impl Preview {
    /// The columns of a process preview's output lines.
    pub fn line_columns(&self) -> Vec<&str> {
        if self.columns.is_empty() {
            vec![LINE_COLUMN]
        } else {
            self.columns.iter().map(String::as_str).collect()
        }
    }
}

fn five() -> usize {
    5
}

/// `watch = { every = "every", for = "for", min_every = "30s", max_for = "30m" }`:
/// a read command that runs now, posts one message, then runs again every
/// `every` until `for` is over, editing that message (the bot's timer
/// service; the last edit says the watch ended). `every` and `for` name
/// duration arguments of the command.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    /// The duration argument giving the interval between runs.
    pub every: String,
    /// The duration argument giving how long the watch lasts.
    #[serde(rename = "for")]
    pub lasts: String,
    /// The shortest interval accepted (30s when absent).
    #[serde(default)]
    #[schemars(with = "Option<super::schema::DurationText>")]
    pub min_every: Option<String>,
    /// The longest watch accepted (30m when absent).
    #[serde(default)]
    #[schemars(with = "Option<super::schema::DurationText>")]
    pub max_for: Option<String>,
    /// A switch of the command (`--stop`) that, given, runs nothing and
    /// ends the command's watches in the channel instead.
    #[serde(default)]
    pub stop: Option<String>,
}

/// `then = { after = "for", default = "30m", max = "24h", when = { state = "on" },
/// set = { state = "off" } }`: after a successful run whose arguments match
/// `when`, the bot runs the command once more, `after` later (a duration
/// argument, `default` when not given, at most `max`), with the arguments of
/// `set` in place of the request's, and posts the result where the request
/// was made (the profiler switched off after `--for`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThenSpec {
    /// The duration argument giving the delay.
    pub after: String,
    /// The delay when the argument is not given.
    #[schemars(with = "super::schema::DurationText")]
    pub default: String,
    /// The shortest delay accepted (1m when absent).
    #[serde(default)]
    #[schemars(with = "Option<super::schema::DurationText>")]
    pub min: Option<String>,
    /// The longest delay accepted.
    #[schemars(with = "super::schema::DurationText")]
    pub max: String,
    /// Only requests with these argument values schedule the follow-up.
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    /// The arguments the follow-up runs with instead (the others are the request's).
    pub set: BTreeMap<String, String>,
}

/// What the bot runs again later for a request of the command (on the one
/// timer service), checked from [`WatchSpec`] or [`ThenSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Run again every `every` for `for`, editing one message.
    Watch {
        every: String,
        lasts: String,
        min_every: Duration,
        max_for: Duration,
        /// The switch that ends the channel's watches instead of starting one.
        stop: Option<String>,
    },
    /// Run once more, `after` later, with `set` applied.
    Then {
        after: String,
        default: Duration,
        min: Duration,
        max: Duration,
        when: BTreeMap<String, String>,
        set: BTreeMap<String, String>,
    },
}

impl Schedule {
    /// Why the request's arguments are out of the schedule's bounds, as a
    /// sentence for chat (`None`: within them). Pure.
    pub fn out_of_bounds(&self, args: &BTreeMap<String, String>) -> Option<String> {
        let get = |name: &str| args.get(name).and_then(|v| crate::duration::parse(v).ok());
        let show = crate::duration::format;
        match self {
            Schedule::Watch {
                every,
                lasts,
                min_every,
                max_for,
                ..
            } => {
                let (e, f) = (get(every)?, get(lasts)?);
                if e < *min_every {
                    Some(format!(
                        "--{every} {} is too often: at least {} between runs.",
                        show(e),
                        show(*min_every)
                    ))
                } else if f > *max_for {
                    Some(format!(
                        "--{lasts} {} is too long: a watch lasts at most {}.",
                        show(f),
                        show(*max_for)
                    ))
                } else if e > f {
                    Some(format!(
                        "--{every} {} is longer than --{lasts} {}: nothing would run again.",
                        show(e),
                        show(f)
                    ))
                } else {
                    None
                }
            }
            Schedule::Then { after, min, max, .. } => {
                let d = get(after)?;
                if d < *min {
                    Some(format!(
                        "--{after} {} is too short: at least {}.",
                        show(d),
                        show(*min)
                    ))
                } else if d > *max {
                    Some(format!(
                        "--{after} {} is too long: at most {}.",
                        show(d),
                        show(*max)
                    ))
                } else {
                    None
                }
            }
        }
    }

    /// The request asks to end the channel's watches (its `stop` switch is on).
    pub fn stops(&self, args: &BTreeMap<String, String>) -> bool {
        matches!(self, Schedule::Watch { stop: Some(flag), .. } if args.get(flag).is_some_and(|v| v == "true"))
    }

    /// The follow-up of a `then` for a request with `args`: its delay and
    /// its arguments; `None` when `when` does not match (or for a watch).
    pub fn follow_up(&self, args: &BTreeMap<String, String>) -> Option<(Duration, BTreeMap<String, String>)> {
        let Schedule::Then {
            after,
            default,
            when,
            set,
            ..
        } = self
        else {
            return None;
        };
        if when.iter().any(|(k, v)| args.get(k) != Some(v)) {
            return None;
        }
        let delay = args
            .get(after)
            .and_then(|v| crate::duration::parse(v).ok())
            .unwrap_or(*default);
        let mut next = args.clone();
        next.remove(after);
        next.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some((delay, next))
    }
}

/// One catalog command of one profile.
#[derive(Debug, Clone)]
pub struct Command {
    pub profile: String,
    /// Chat words without the slash: `"queue retry"`.
    pub name: String,
    pub summary: String,
    pub args: Vec<ArgSpec>,
    pub risk: Risk,
    /// Who may request it (role names; `anyone` allows unknown identities for reads).
    pub roles: Vec<String>,
    pub approve: Option<ApprovePolicy>,
    pub action: Action,
    /// Shown on the approval card; execution touches only what it found.
    pub preview: Option<Preview>,
    /// Reply template; `{response.field}`, `{output}` and args may appear.
    pub reply: Option<String>,
    /// What the bot runs again later for a request (`watch`, `then`).
    pub schedule: Option<Schedule>,
    pub location: Location,
}

impl Command {
    /// Whether the action or the preview calls target `name`.
    pub fn calls(&self, name: &str) -> bool {
        let preview = self.preview.iter().flat_map(|p| p.action.targets());
        self.action
            .targets()
            .into_iter()
            .chain(preview)
            .any(|(t, _)| t == name)
    }

    /// The usage line, generated from the argument definitions.
    pub fn usage(&self) -> String {
        let mut s = format!("/{}", self.name);
        for a in &self.args {
            let p = a.kind.placeholder();
            let item = match (a.flag, &a.kind) {
                (true, ArgKind::Bool) => format!("[--{}]", a.name),
                (true, _) => format!("[--{} <{p}>]", a.name),
                (false, _) if a.required => format!("<{}:{p}>", a.name),
                (false, _) => format!("[<{}:{p}>]", a.name),
            };
            s.push(' ');
            s.push_str(&item);
        }
        s
    }

    pub fn arg(&self, name: &str) -> Option<&ArgSpec> {
        self.args.iter().find(|a| a.name == name)
    }

    /// The variants of the command's action, when it is one.
    pub fn variants(&self) -> Option<&Variants> {
        match &self.action {
            Action::Variants(v) => Some(v),
            _ => None,
        }
    }

    /// The approval policy a request with `args` needs: its variant's own,
    /// else the command's. Pure.
    pub fn approval(&self, args: &BTreeMap<String, String>) -> Option<&ApprovePolicy> {
        self.variants()
            .and_then(|v| v.choice(args))
            .and_then(|c| c.policy.as_ref())
            .or(self.approve.as_ref())
    }

    /// Some request of the command needs an approval.
    pub fn may_need_approval(&self) -> bool {
        self.approve.is_some() || self.variant_policies().next().is_some()
    }

    /// Each variant with a policy of its own: (its choice, the policy).
    pub fn variant_policies(&self) -> impl Iterator<Item = (&Choice, &ApprovePolicy)> {
        self.variants()
            .into_iter()
            .flat_map(|v| v.choices.iter())
            .filter_map(|c| c.policy.as_ref().map(|p| (c, p)))
    }

    /// How a user picks `choice`: `--emergency`, `without --emergency`,
    /// `--k deps`, `k = deps` (a positional).
    pub fn choice_label(&self, choice: &Choice) -> String {
        let Some(v) = self.variants() else {
            return choice.value.clone();
        };
        match self.arg(&v.by).map(|a| (&a.kind, a.flag)) {
            Some((ArgKind::Bool, _)) if choice.value == "true" => format!("--{}", v.by),
            Some((ArgKind::Bool, _)) => format!("without --{}", v.by),
            Some((_, true)) => format!("--{} {}", v.by, choice.value),
            _ => format!("{} = {}", v.by, choice.value),
        }
    }
}
