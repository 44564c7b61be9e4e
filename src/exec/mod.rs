//! Executors: run one catalog [`Action`] against its targets and describe the
//! result. They only execute: authorization, approvals, the store and chat
//! replies live elsewhere.
//!
//! Argument values come from chat and are hostile. Each executor inserts them
//! in its own medium's way and never through a shell or string-built query:
//! URL path segments are percent-encoded, query values form-encoded, JSON built
//! as values, Redis arguments passed as separate binary-safe arguments, SQL
//! parameters bound, process arguments passed as argv elements.
//!
//! Every output and every error text passes through the [`Redactor`] and is
//! then truncated to [`Limits::output_chars`].
//!
//! Reading is bounded too, before any of that: SQL rows are streamed and the
//! reading stops at [`READ_ITEMS`] rows or [`READ_BYTES`] bytes; a Redis reply
//! is converted up to [`READ_ITEMS`] elements and [`READ_BYTES`] bytes of
//! strings; HTTP bodies and process output stop at 1 MiB. Where anything was
//! cut, the output says so (`… (first 200 rows of more)`). Each action has one
//! deadline for all of its round trips (a SCAN loop included), not one per call.
//!
//! A `seq` action renders (and so checks) every step before the first one
//! runs, then runs them in order, each step with its own deadline and output
//! budget, and stops at the first failure ([`ExecError::Step`]).

mod each;
mod health;
mod http;
mod internal;
mod output;
mod preview;
mod process;
mod redis;
mod render;
mod seq;
mod sql;
mod summarize;
mod variants;

pub use internal::{Effect, MAINTENANCE_STATE};
pub use output::{one_line, truncate, Redactor, REDACTED};
pub use preview::{from_fields as preview_from_fields, line_rows as preview_line_rows, Bound};
pub use process::{remote_command, shell_quote, ssh_argv};
pub use redis::Planned as RedisPlan;
pub use render::{render, Rendered};
pub use sql::quote_ident;
pub use summarize::{advice, apply as summarize, pick};

use crate::catalog::{Action, Target, TargetKind};
use crate::clock::SharedClock;
use crate::duration;
use secrecy::SecretString;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// Bounds that apply to every execution.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest `text` (and longest string inside `fields`) returned, in chars.
    pub output_chars: usize,
    /// Programs that a process action's `argv[0]` may name, literally.
    pub process_allow: Vec<String>,
    /// Programs that only the actions of one profile may name.
    pub process_allow_by_profile: BTreeMap<String, Vec<String>>,
    /// Timeout of a process action that sets none.
    pub default_timeout: Duration,
    /// The program run for a profile with an SSH host (`ssh` on PATH).
    pub ssh_program: String,
}

impl Limits {
    /// Whether `profile`'s process actions may run `program`.
    pub fn allows(&self, profile: &str, program: &str) -> bool {
        let listed = |l: &[String]| l.iter().any(|p| p == program);
        listed(&self.process_allow)
            || self
                .process_allow_by_profile
                .get(profile)
                .is_some_and(|l| listed(l))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            output_chars: 3000,
            process_allow: Vec::new(),
            process_allow_by_profile: BTreeMap::new(),
            default_timeout: Duration::from_secs(30),
            ssh_program: "ssh".into(),
        }
    }
}

/// The result of one execution.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// One line for chat and audit: `POST /api/queue/x/pause → 200 in 12 ms`.
    pub summary: String,
    /// The output body: redacted, then truncated with a `… [truncated N chars]` marker.
    pub text: String,
    /// Structured result for reply templates (see each executor).
    pub fields: serde_json::Value,
    /// What the engine applies with the result (a maintenance step's
    /// window), in the order the steps ran.
    pub effects: Vec<Effect>,
}

/// Why an execution failed. The text names the target and the reason and is
/// meant to be shown to users as is; secrets are redacted from it.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The action names a target the catalog does not define.
    #[error("target {target} is not defined")]
    UnknownTarget { target: String },
    /// The target is shipped without a URL and none was configured.
    #[error(
        "target {target} is not configured: set {} to its URL (the command's profile file says what it must answer)",
        crate::catalog::target_env_var(.target)
    )]
    Unset { target: String },
    /// The target exists but speaks another protocol.
    #[error("target {target} is a {actual} target, not {expected}")]
    WrongKind {
        target: String,
        expected: &'static str,
        actual: &'static str,
    },
    /// A template needs an argument that was not given.
    #[error("argument `{name}` has no value")]
    MissingArg { name: String },
    /// A value or configuration that cannot be used safely or at all.
    #[error("{message}")]
    Invalid { target: Option<String>, message: String },
    /// Could not connect.
    #[error("target {target} unreachable: {reason} ({address})")]
    Unreachable {
        target: String,
        reason: String,
        address: String,
    },
    /// An HTTP target answered with a status the action does not accept.
    #[error("target {target} answered {status} (expected {expected}): {body}")]
    Status {
        target: String,
        status: u16,
        expected: String,
        body: String,
    },
    /// The call did not finish in time (a process is killed).
    #[error("timed out after {} {what}", duration::format(*.after))]
    Timeout {
        target: Option<String>,
        what: String,
        after: Duration,
    },
    /// A safety rule refused the request: `pattern `*` refused: …`.
    #[error("{what} refused: {reason}")]
    Refused {
        target: Option<String>,
        what: String,
        reason: String,
    },
    /// The backend (Redis, SQL) reported an error.
    #[error("target {target}: {message}")]
    Backend { target: String, message: String },
    /// `argv[0]` is not on [`Limits::process_allow`].
    #[error("program `{program}` is not on the allow-list")]
    NotAllowed { program: String },
    /// The program could not be started.
    #[error("program `{program}` could not be started: {reason}")]
    Spawn { program: String, reason: String },
    /// The program exited unsuccessfully; `excerpt` is from stderr (or stdout).
    #[error("{}: {excerpt}", exit_label(*.code))]
    Exit { code: Option<i32>, excerpt: String },
    /// Step `step` of a `seq` failed; `lines` tell every step's outcome
    /// (the finally steps' too, which all ran after the failure). The text
    /// lists them, one per line. `effects` are those of the steps that ran:
    /// they hold, the failure notwithstanding.
    #[error("{}", seq::step_report(*.step, *.of, .what, .source, .lines))]
    Step {
        step: usize,
        of: usize,
        what: String,
        source: Box<ExecError>,
        lines: Box<SeqLines>,
        effects: Vec<Effect>,
    },
    /// Every step of a `seq` succeeded, then its finally step `step` of `of`
    /// failed (`source`); `lines` tell every step's outcome (that failure's
    /// included), `effects` are those of all that succeeded.
    #[error("{}", seq::finally_report(*.step, *.of, .lines))]
    Finally {
        step: usize,
        of: usize,
        source: Box<ExecError>,
        lines: Box<SeqLines>,
        effects: Vec<Effect>,
    },
    /// Some items of an `each` action failed; `report` lists every item's
    /// outcome, one per line.
    #[error("{report}")]
    Items { report: String },
    /// A step of a `seq` was refused when every step was checked before the
    /// first one ran, so nothing ran. `path` is the step's number and count
    /// at each level of nesting, outermost first.
    #[error("{} refused, nothing was run: {source}", seq::step_path(.path))]
    StepRefused {
        path: Vec<(usize, usize)>,
        source: Box<ExecError>,
    },
}

/// The outcome lines of a failed `seq`'s steps.
#[derive(Debug, Default)]
pub struct SeqLines {
    /// The summaries of the steps that succeeded, before the failure.
    pub ran: Vec<String>,
    /// What each step after the failed one would have done.
    pub not_run: Vec<String>,
    /// The outcome of each finally step.
    pub finally: Vec<String>,
}

impl SeqLines {
    fn texts_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.ran
            .iter_mut()
            .chain(self.not_run.iter_mut())
            .chain(self.finally.iter_mut())
    }
}

fn exit_label(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".into(),
    }
}

impl ExecError {
    /// The target the error is about, when there is one.
    pub fn target(&self) -> Option<&str> {
        match self {
            ExecError::UnknownTarget { target }
            | ExecError::Unset { target }
            | ExecError::WrongKind { target, .. }
            | ExecError::Unreachable { target, .. }
            | ExecError::Status { target, .. }
            | ExecError::Backend { target, .. } => Some(target),
            ExecError::Invalid { target, .. }
            | ExecError::Timeout { target, .. }
            | ExecError::Refused { target, .. } => target.as_deref(),
            ExecError::MissingArg { .. }
            | ExecError::NotAllowed { .. }
            | ExecError::Spawn { .. }
            | ExecError::Exit { .. }
            | ExecError::Items { .. } => None,
            ExecError::Step { source, .. }
            | ExecError::Finally { source, .. }
            | ExecError::StepRefused { source, .. } => source.target(),
        }
    }

    /// The effects of the steps that ran before the failure (a seq's).
    pub fn effects(&self) -> &[Effect] {
        match self {
            ExecError::Step { effects, .. } | ExecError::Finally { effects, .. } => effects,
            _ => &[],
        }
    }

    /// This error as the refusal of step `step` of `of` of a `seq`.
    fn in_step(self, step: usize, of: usize) -> ExecError {
        match self {
            ExecError::StepRefused { mut path, source } => {
                path.insert(0, (step, of));
                ExecError::StepRefused { path, source }
            }
            other => ExecError::StepRefused {
                path: vec![(step, of)],
                source: Box::new(other),
            },
        }
    }

    /// The same error with every free-text field passed through `f`.
    fn map_text(mut self, f: impl Fn(&str) -> String) -> Self {
        for text in self.texts_mut() {
            *text = f(text);
        }
        self
    }

    /// Fields that may carry values from outside (bodies, stderr, reasons).
    fn texts_mut(&mut self) -> Vec<&mut String> {
        use ExecError::*;
        match self {
            Invalid { message, .. } | Backend { message, .. } => vec![message],
            Unreachable { reason, address, .. } => vec![reason, address],
            Status { body, .. } => vec![body],
            Timeout { what, .. } => vec![what],
            Refused { what, reason, .. } => vec![what, reason],
            Spawn { program, reason } => vec![program, reason],
            NotAllowed { program } => vec![program],
            Exit { excerpt, .. } => vec![excerpt],
            Items { report } => vec![report],
            Step {
                what, source, lines, ..
            } => {
                let mut v = vec![what];
                v.extend(source.texts_mut());
                v.extend(lines.texts_mut());
                v
            }
            Finally { source, lines, .. } => {
                let mut v = source.texts_mut();
                v.extend(lines.texts_mut());
                v
            }
            StepRefused { source, .. } => source.texts_mut(),
            UnknownTarget { .. } | Unset { .. } | WrongKind { .. } | MissingArg { .. } => vec![],
        }
    }
}

/// The effects an execution's result carries: all of a success's, and
/// those of the steps a failed seq ran.
pub fn effects(result: &Result<ExecOutput, ExecError>) -> &[Effect] {
    match result {
        Ok(out) => &out.effects,
        Err(e) => e.effects(),
    }
}

/// Lazily created, shared per-target clients (Redis connections, SQL pools).
struct Cache<T> {
    cells: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

impl<T: Clone> Cache<T> {
    fn new() -> Self {
        Cache {
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `key`, created by `init` on first use. A failed `init`
    /// is not cached, so the next call tries again.
    async fn get<F, Fut>(&self, key: &str, init: F) -> Result<T, ExecError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ExecError>>,
    {
        let cell = {
            let mut cells = self.cells.lock().await;
            cells.entry(key.to_string()).or_default().clone()
        };
        cell.get_or_try_init(init).await.cloned()
    }
}

/// Runs actions. Holds one HTTP client and, per target, a Redis connection
/// manager or SQL pool created on first use. Share it behind an `Arc`.
pub struct Executor {
    http: reqwest::Client,
    redis: Cache<::redis::aio::ConnectionManager>,
    sql: Cache<sqlx::AnyPool>,
    limits: Limits,
    redactor: Redactor,
    clock: SharedClock,
    /// The bot's environment as given at construction (`main` reads the
    /// process environment once): header, body and process secrets, and what
    /// a process inherits. The executor never reads the process environment.
    env: HashMap<String, String>,
}

/// The argument key of the run's timestamp, `{run.ts}` in process templates.
pub const RUN_TS: &str = "run.ts";

/// `args` with `run.ts` set to `now` in UTC as `YYYYMMDDTHHMMSSZ` (digits,
/// `T` and `Z`: safe in any file or database name).
pub fn with_run_ts(args: &BTreeMap<String, String>, now: crate::clock::Millis) -> BTreeMap<String, String> {
    let mut out = args.clone();
    let text = crate::clock::rfc3339(now);
    // `2026-12-02T04:15:00.123Z` → `20261202T041500Z`
    let stamp: String = text
        .split('.')
        .next()
        .unwrap_or(&text)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    out.insert(RUN_TS.to_string(), format!("{stamp}Z"));
    out
}

/// Longest excerpt of a body or stderr inside an error message.
const EXCERPT_CHARS: usize = 300;

/// Most SQL rows, and most elements of a Redis reply, read into an output.
pub const READ_ITEMS: usize = 200;
/// Most bytes of values (SQL cells, Redis strings) read into an output.
pub const READ_BYTES: usize = 1 << 20;

impl Executor {
    /// An executor with `limits`, redacting `secrets` from everything it
    /// returns, reading `env:NAME` / `{secret.NAME}` values (and what a
    /// process inherits, such as `PATH`) from `env`.
    pub fn new(limits: Limits, secrets: Vec<SecretString>, env: HashMap<String, String>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("opsbot/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Executor {
            http,
            redis: Cache::new(),
            sql: Cache::new(),
            limits,
            redactor: Redactor::new(secrets),
            clock: Arc::new(crate::clock::SystemClock),
            env,
        }
    }

    /// The same executor reading `{run.ts}` from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The limits this executor applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The longest `action` may run: each action's deadline (its own
    /// timeout, else its target's, else the process default), summed over
    /// a seq's steps, the longest of variants' choices and of concurrent
    /// health checks. An `each` counts its action once: its items are known
    /// only at execution (guided runs have no preview, so no `each`). Pure.
    pub fn budget(&self, action: &Action, targets: &BTreeMap<String, Target>) -> Duration {
        let target = |name: &str| targets.get(name).map_or(Duration::from_secs(10), Target::timeout);
        match action {
            Action::Http(h) => target(&h.target),
            Action::Redis(r) => r.timeout.unwrap_or_else(|| target(&r.target)),
            Action::Sql(q) => q.timeout.unwrap_or_else(|| target(&q.target)),
            Action::Process(p) => p.timeout.unwrap_or(self.limits.default_timeout),
            Action::Health(h) => h
                .checks
                .iter()
                .map(|c| target(&c.target))
                .max()
                .unwrap_or_default(),
            Action::Internal(_) => Duration::ZERO,
            Action::Seq(seq) => seq.all().map(|s| self.budget(&s.action, targets)).sum(),
            Action::Variants(v) => v
                .choices
                .iter()
                .map(|c| self.budget(&c.action.action, targets))
                .max()
                .unwrap_or_default(),
            Action::Summarize(s) => self.budget(&s.of.action, targets),
            Action::Each(step) => self.budget(&step.action, targets),
        }
    }

    /// The redactor applied to every output (it also learns header secrets).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Runs `action` with `args` (argument name → value; absent optional
    /// arguments are simply missing) against `targets`.
    pub async fn execute(
        &self,
        action: &Action,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        self.execute_from(action, targets, args, 0).await
    }

    /// [`Executor::execute`] from the step at index `start` of a seq (0: the
    /// whole action; see [`Executor::resume`]).
    async fn execute_from(
        &self,
        action: &Action,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        start: usize,
    ) -> Result<ExecOutput, ExecError> {
        self.learn_header_secrets(targets);
        // `{run.ts}`: once per run, so every step of a seq sees the same one.
        let stamped;
        let args = if args.contains_key(RUN_TS) {
            args
        } else {
            stamped = with_run_ts(args, self.clock.now_ms());
            &stamped
        };
        let result = match (action, start) {
            (Action::Seq(seq), 1..) => self.run_seq_from(seq, targets, args, start).await,
            _ => self.run(action, targets, args).await,
        };
        self.finish(result)
    }

    /// Runs `action`, its output not yet redacted nor cut to chat size (a
    /// summary reads all of it).
    async fn run(
        &self,
        action: &Action,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        match action {
            Action::Http(a) => self.run_http(a, targets, args).await,
            Action::Redis(a) => self.run_redis(a, targets, args).await,
            Action::Sql(a) => self.run_sql(a, targets, args).await,
            Action::Process(a) => self.run_process(a, targets, args).await,
            Action::Health(a) => Ok(self.run_health(a, targets).await),
            Action::Seq(seq) => self.run_seq(seq, targets, args).await,
            Action::Internal(a) => internal::run(a, targets, args, self.clock.now_ms()),
            // Boxed: a choice may be a seq (or hold one).
            Action::Variants(v) => match variants::choose(v, args) {
                Ok(chosen) => Box::pin(self.execute(chosen, targets, args)).await,
                Err(e) => Err(e),
            },
            // Boxed: what is summarized may be a seq.
            Action::Each(step) => self.run_each(step, targets, args).await,
            Action::Summarize(sum) => match Box::pin(self.run(&sum.of.action, targets, args)).await {
                Ok(out) => summarize::apply(sum, out),
                Err(e) => Err(e),
            },
        }
    }

    /// Adds every header secret of `targets` (`env:NAME` values) to the
    /// redactor, so that a secret is redacted from any target's output, not
    /// only after its own target was first called.
    fn learn_header_secrets(&self, targets: &BTreeMap<String, Target>) {
        let refs = targets.values().flat_map(|t| t.headers.values());
        for (_, var) in refs.filter_map(|v| http::env_reference(v)) {
            if let Some(secret) = http::env_secret(&self.env, var) {
                self.redactor.add(&secret);
            }
        }
    }

    /// Redacts, then truncates, everything that leaves the executor.
    fn finish(&self, r: Result<ExecOutput, ExecError>) -> Result<ExecOutput, ExecError> {
        let max = self.limits.output_chars;
        match r {
            Ok(o) => Ok(ExecOutput {
                summary: one_line(&self.redactor.redact(&o.summary), 300),
                text: truncate(&self.redactor.redact(&o.text), max),
                fields: self.redactor.redact_json(&o.fields, max),
                effects: o.effects,
            }),
            Err(e) => Err(e.map_text(|s| truncate(&self.redactor.redact(s), max))),
        }
    }

    /// A redacted, short excerpt of `s` for an error message.
    fn excerpt(&self, s: &str) -> String {
        truncate(self.redactor.redact(s.trim()).as_str(), EXCERPT_CHARS)
    }

    /// The target `name`, which must be of `kind`. Passwords in its URL are
    /// added to the redactor.
    fn target<'a>(
        &self,
        targets: &'a BTreeMap<String, Target>,
        name: &str,
        kind: TargetKind,
    ) -> Result<&'a Target, ExecError> {
        let t = lookup(targets, name, kind)?;
        if let Ok(url) = reqwest::Url::parse(&t.url) {
            if let Some(p) = url.password() {
                self.redactor.add(p);
                let decoded = percent_encoding::percent_decode_str(p).decode_utf8_lossy();
                self.redactor.add(&decoded);
            }
        }
        Ok(t)
    }
}

/// The target `name`, which must be of `kind`.
fn lookup<'a>(
    targets: &'a BTreeMap<String, Target>,
    name: &str,
    kind: TargetKind,
) -> Result<&'a Target, ExecError> {
    let t = configured(targets, name)?;
    if t.kind != kind {
        return Err(ExecError::WrongKind {
            target: name.to_string(),
            expected: kind_name(kind),
            actual: kind_name(t.kind),
        });
    }
    Ok(t)
}

/// The target `name`, which must be defined and have a URL.
fn configured<'a>(targets: &'a BTreeMap<String, Target>, name: &str) -> Result<&'a Target, ExecError> {
    let t = targets.get(name).ok_or_else(|| ExecError::UnknownTarget {
        target: name.to_string(),
    })?;
    if !t.is_set() {
        return Err(ExecError::Unset {
            target: name.to_string(),
        });
    }
    Ok(t)
}

fn kind_name(k: TargetKind) -> &'static str {
    match k {
        TargetKind::Http => "http",
        TargetKind::Redis => "redis",
        TargetKind::Sql => "sql",
        TargetKind::Mongo => "mongo",
    }
}

/// `url` without user name and password, for messages.
fn address(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "invalid address".into(),
    }
}

/// Renders `tpl`, passing each argument value through `escape`. A placeholder
/// without a value is an error.
fn render_escaped(
    tpl: &str,
    args: &BTreeMap<String, String>,
    escape: impl Fn(&str) -> String,
) -> Result<String, ExecError> {
    let mut missing: Option<String> = None;
    let out = crate::template::render(tpl, |name| match args.get(name) {
        Some(v) => Some(escape(v)),
        None => {
            missing.get_or_insert_with(|| name.to_string());
            None
        }
    });
    match missing {
        Some(name) => Err(ExecError::MissingArg { name }),
        None => Ok(out),
    }
}

/// Renders `tpl` with raw values; `None` when `tpl` is exactly the placeholder
/// of an absent argument (the element is then dropped).
fn render_optional(tpl: &str, args: &BTreeMap<String, String>) -> Result<Option<String>, ExecError> {
    match crate::template::sole_placeholder(tpl) {
        Some(name) if !args.contains_key(name) => Ok(None),
        _ => render_escaped(tpl, args, str::to_string).map(Some),
    }
}

/// Renders argv elements (Redis arguments, process argv); an element that is
/// exactly an absent argument's placeholder is dropped.
fn render_argv(argv: &[String], args: &BTreeMap<String, String>) -> Result<Vec<String>, ExecError> {
    let mut out = Vec::with_capacity(argv.len());
    for el in argv {
        out.extend(render_optional(el, args)?);
    }
    Ok(out)
}

/// Milliseconds, for summaries.
fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// The innermost cause of an error, for messages: `connection refused`.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let msg = cur.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("connection refused") {
        "connection refused".into()
    } else {
        msg
    }
}
