//! Typed configuration: `config/opsbot.toml`, then environment overrides.
//! Secrets come only from the environment (or a file named by `<VAR>_FILE`)
//! and are held as `SecretString`, so `Debug` and logs never show them.

use crate::catalog::{line_of, Problem};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub const DEFAULT_CONFIG: &str = "config/opsbot.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://opsbot.db?mode=rwc";
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api/";
pub const DEFAULT_DISCORD_API_URL: &str = "https://discord.com/api/v10";

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages and relative paths).
    pub path: PathBuf,
    pub listen: String,
    /// Where `/metrics` is served instead of `listen` (`OPSBOT_METRICS_LISTEN`).
    pub metrics_listen: Option<String>,
    pub database_url: SecretString,
    pub redis_url: Option<SecretString>,
    pub commands_dir: PathBuf,
    pub profiles: Vec<String>,
    /// Channel id → profile bound to it.
    pub channels: BTreeMap<String, String>,
    pub people: BTreeMap<String, PersonConfig>,
    /// Extra roles beyond the built-in ones, with the roles they imply.
    pub roles: BTreeMap<String, Vec<String>>,
    pub limits: Limits,
    pub http: HttpLimits,
    pub process_allow: Vec<String>,
    /// `[process.<profile>] allow`: programs only that profile's actions may run.
    pub process_allow_by_profile: BTreeMap<String, Vec<String>>,
    /// The ssh client run for profiles with an SSH host (`[process] ssh`,
    /// default `ssh` on PATH).
    pub ssh_program: String,
    pub log_json: bool,
    pub slack: Option<SlackConfig>,
    pub discord: Option<DiscordConfig>,
    /// Values that must never appear in output (tokens, DSN passwords).
    pub secrets: Vec<SecretString>,
    /// Where things were declared, for `file:line` messages: keys like
    /// `people.alice`, `channels.C0123`, `profiles`.
    pub lines: BTreeMap<String, usize>,
    /// `[calendars]`, `[rotations]`, `[policies]` as written (checked by
    /// `policy::load`, which needs the people and roles).
    pub policy_tables: crate::policy::Raw,
    /// Role → calendar it is available in (`[roles.<r>] available`).
    pub role_calendars: BTreeMap<String, String>,
    /// `[alerts]` as written (checked by `alerts::route::load` against the
    /// policies); `None` when the file has no such section.
    pub alert_routes: Option<Spanned<crate::alerts::route::Raw>>,
    /// Who may post alerts (all from the environment).
    pub alert_auth: AlertAuth,
    /// The file's text, to place policy problems on their lines.
    pub source: std::sync::Arc<str>,
}

/// The alert endpoints' credentials, all from the environment.
#[derive(Debug, Clone, Default)]
pub struct AlertAuth {
    /// `OPSBOT_ALERT_TOKEN`: the Bearer token of `/alerts/alertmanager`,
    /// `/alerts/grafana` and `/alerts/generic` (unset: they refuse all, 401).
    pub token: Option<SecretString>,
    /// `OPSBOT_GRAFANA_SECRET`: when set, Grafana's HMAC signature is required.
    pub grafana_secret: Option<SecretString>,
    /// `OPSBOT_ALERT_ROUTING_KEY_<NAME>`: PagerDuty integration keys, by
    /// lower-case name (the label `integration`).
    pub routing_keys: Vec<(String, SecretString)>,
}

/// The prefix of the PagerDuty integration key variables.
pub const ROUTING_KEY_PREFIX: &str = "OPSBOT_ALERT_ROUTING_KEY_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    #[serde(default)]
    pub slack: Vec<String>,
    #[serde(default)]
    pub discord: Vec<String>,
    #[serde(default)]
    pub console: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl PersonConfig {
    /// Wire identities: `slack:U0ALICE`, `discord:111…`, `console:alice`.
    pub fn identities(&self) -> Vec<String> {
        let tag =
            |kind: &str, ids: &[String]| ids.iter().map(|id| format!("{kind}:{id}")).collect::<Vec<_>>();
        [
            tag("slack", &self.slack),
            tag("discord", &self.discord),
            tag("console", &self.console),
        ]
        .concat()
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub output_chars: usize,
    pub exec_timeout: Duration,
}

/// The HTTP edge's own limits (`[http]`); see the README's "Bad input and
/// abuse" table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest body of a chat endpoint (`/slack/*`), in bytes.
    pub chat_body_bytes: usize,
    /// Largest body of an alert endpoint (`/alerts/*`), in bytes.
    pub alert_body_bytes: usize,
    /// A connection that has not sent a whole request head by then is closed.
    pub header_timeout: Duration,
    /// A request whose body has not arrived by then is refused.
    pub body_timeout: Duration,
    /// Requests handled at once; more are answered 503 at once.
    pub max_concurrent: usize,
    /// Commands one identity may send per minute (sustained) …
    pub commands_per_minute: u32,
    /// … and at once (burst).
    pub command_burst: u32,
    /// How often `/metrics`' store gauges are recounted in the background.
    pub metrics_refresh: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            chat_body_bytes: 64 * 1024,
            // PagerDuty's own limit on an event; a post of Alertmanager's
            // `max_alerts` fits easily.
            alert_body_bytes: 512 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_concurrent: 256,
            commands_per_minute: 20,
            command_burst: 10,
            metrics_refresh: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub signing_secret: SecretString,
    pub bot_token: SecretString,
    pub app_token: Option<SecretString>,
    pub api_url: String,
    /// When set, requests from another workspace are refused (`SLACK_TEAM_ID`).
    pub team_id: Option<String>,
    /// When set, requests for another app are refused (`SLACK_APP_ID`).
    pub app_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The application's Ed25519 public key (hex; not a secret).
    pub public_key: String,
    pub bot_token: SecretString,
    pub application_id: String,
    pub api_url: String,
}

/// A config that could not be loaded: every problem with `file:line`.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    metrics_listen: Option<String>,
    database_url: Option<String>,
    commands_dir: Option<String>,
    #[serde(default)]
    profiles: RawProfiles,
    #[serde(default)]
    channels: BTreeMap<String, Spanned<RawChannel>>,
    #[serde(default)]
    people: BTreeMap<String, Spanned<RawPerson>>,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    process: RawProcess,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    calendars: toml::Table,
    #[serde(default)]
    rotations: toml::Table,
    #[serde(default)]
    policies: toml::Table,
    alerts: Option<Spanned<crate::alerts::route::Raw>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    #[serde(default)]
    enabled: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    profile: String,
}

/// Identities may be written as one string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    slack: Option<OneOrMany>,
    discord: Option<OneOrMany>,
    console: Option<OneOrMany>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    implies: Vec<String>,
    /// A calendar: people of this role are paged only while it is open
    /// (except at rank 1).
    available: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    output_chars: Option<usize>,
    exec_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    chat_body_bytes: Option<usize>,
    alert_body_bytes: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    max_concurrent: Option<usize>,
    commands_per_minute: Option<u32>,
    command_burst: Option<u32>,
    metrics_refresh: Option<String>,
}

/// `[process]`: `allow` for every profile, `ssh`, and `[process.<profile>]
/// allow` for one profile (not `deny_unknown_fields`: the profile tables
/// are flattened; a misspelt key fails as a table that is not one).
#[derive(Deserialize, Default)]
struct RawProcess {
    #[serde(default)]
    allow: Vec<String>,
    ssh: Option<String>,
    #[serde(flatten)]
    profiles: BTreeMap<String, RawProcessProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcessProfile {
    allow: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
}

impl Config {
    /// Loads `path` (a missing file is an empty config) and applies `env`.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(single(path, 0, format!("cannot read: {e}"))),
        };
        Self::parse(path, &text, env)
    }

    /// Parses config text as if read from `path`.
    pub fn parse(path: &Path, text: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            single(path, line, e.message().trim().to_string())
        })?;
        let mut problems = Vec::new();
        let mut secrets = Vec::new();
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let secret = |k: &str, problems: &mut Vec<Problem>| -> Option<String> {
            match secret_from_env(env, k) {
                Ok(v) => v,
                Err(msg) => {
                    problems.push(problem(&file, 0, msg));
                    None
                }
            }
        };
        let database_url = secret("OPSBOT_DATABASE_URL", &mut problems)
            .or(raw.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        secrets.extend(dsn_password(&database_url));
        let redis_url = secret("OPSBOT_REDIS_URL", &mut problems);
        if let Some(r) = &redis_url {
            secrets.extend(dsn_password(r));
        }
        let slack = slack_config(env, &mut problems, &file, &mut secrets);
        let discord = discord_config(env, &mut problems, &file, &mut secrets);
        let alert_auth = alert_auth(env, &mut problems, &file, &mut secrets);
        let exec_timeout = duration_key(
            ("limits.exec_timeout", raw.limits.exec_timeout.as_deref()),
            Duration::from_secs(30),
            &file,
            &mut problems,
        );
        let http = http_limits(raw.http, env, &file, &mut problems);
        let mut lines = BTreeMap::new();
        let channels = channels(raw.channels, text, &mut lines);
        let profiles = profiles(raw.profiles.enabled, get("OPSBOT_PROFILES"), text, &mut lines);
        let people = people(raw.people, text, &mut lines);
        let base = path.parent().and_then(Path::parent).unwrap_or(Path::new(""));
        let commands_dir = get("OPSBOT_COMMANDS_DIR")
            .map(PathBuf::from)
            .or(raw.commands_dir.map(|d| base.join(d)))
            .unwrap_or_else(|| base.join("commands"));
        let log_json = get("OPSBOT_LOG_FORMAT")
            .or(raw.log.format)
            .is_some_and(|f| f.eq_ignore_ascii_case("json"));
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            path: path.to_path_buf(),
            listen: get("OPSBOT_LISTEN")
                .or(raw.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            metrics_listen: get("OPSBOT_METRICS_LISTEN").or(raw.metrics_listen),
            database_url: database_url.into(),
            redis_url: redis_url.map(Into::into),
            commands_dir,
            profiles,
            channels,
            people,
            role_calendars: raw
                .roles
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.available.clone()?)))
                .collect(),
            roles: raw.roles.into_iter().map(|(k, v)| (k, v.implies)).collect(),
            limits: Limits {
                output_chars: raw.limits.output_chars.unwrap_or(3000),
                exec_timeout,
            },
            http,
            process_allow: raw.process.allow,
            process_allow_by_profile: raw
                .process
                .profiles
                .into_iter()
                .map(|(p, v)| (p, v.allow))
                .collect(),
            ssh_program: raw.process.ssh.unwrap_or_else(|| "ssh".into()),
            log_json,
            slack,
            discord,
            secrets: secrets.into_iter().map(Into::into).collect(),
            lines,
            policy_tables: crate::policy::Raw {
                calendars: raw.calendars,
                rotations: raw.rotations,
                policies: raw.policies,
            },
            alert_routes: raw.alerts,
            alert_auth,
            source: text.into(),
        })
    }
}

/// The duration at `key` (`(name, raw value)`), `default` when absent.
fn duration_key(
    key: (&str, Option<&str>),
    default: Duration,
    file: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    let (name, raw) = key;
    match raw.map(crate::duration::parse) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            problems.push(problem(file, 0, format!("{name}: {e}")));
            default
        }
    }
}

/// `[http]`, with `OPSBOT_COMMANDS_PER_MINUTE` / `OPSBOT_COMMAND_BURST`
/// overriding the rate limit (benchmarks of one identity lift it).
fn http_limits(
    mut raw: RawHttp,
    env: &HashMap<String, String>,
    file: &str,
    problems: &mut Vec<Problem>,
) -> HttpLimits {
    for (var, slot) in [
        ("OPSBOT_COMMANDS_PER_MINUTE", &mut raw.commands_per_minute),
        ("OPSBOT_COMMAND_BURST", &mut raw.command_burst),
    ] {
        match env.get(var).filter(|v| !v.is_empty()).map(|v| v.parse::<u32>()) {
            None => {}
            Some(Ok(n)) => *slot = Some(n),
            Some(Err(e)) => problems.push(problem(file, 0, format!("{var}: {e}"))),
        }
    }
    let d = HttpLimits::default();
    let mut dur = |name: &str, v: Option<String>, default: Duration| {
        duration_key((name, v.as_deref()), default, file, problems)
    };
    let limits = HttpLimits {
        chat_body_bytes: raw.chat_body_bytes.unwrap_or(d.chat_body_bytes),
        alert_body_bytes: raw.alert_body_bytes.unwrap_or(d.alert_body_bytes),
        header_timeout: dur("http.header_timeout", raw.header_timeout, d.header_timeout),
        body_timeout: dur("http.body_timeout", raw.body_timeout, d.body_timeout),
        max_concurrent: raw.max_concurrent.unwrap_or(d.max_concurrent),
        commands_per_minute: raw.commands_per_minute.unwrap_or(d.commands_per_minute),
        command_burst: raw.command_burst.unwrap_or(d.command_burst),
        metrics_refresh: dur("http.metrics_refresh", raw.metrics_refresh, d.metrics_refresh),
    };
    let zero = [
        ("chat_body_bytes", limits.chat_body_bytes == 0),
        ("alert_body_bytes", limits.alert_body_bytes == 0),
        ("max_concurrent", limits.max_concurrent == 0),
        ("commands_per_minute", limits.commands_per_minute == 0),
        ("command_burst", limits.command_burst == 0),
    ];
    for (name, _) in zero.iter().filter(|(_, z)| *z) {
        problems.push(problem(file, 0, format!("http.{name} must be at least 1")));
    }
    limits
}

fn channels(
    raw: BTreeMap<String, Spanned<RawChannel>>,
    text: &str,
    lines: &mut BTreeMap<String, usize>,
) -> BTreeMap<String, String> {
    raw.into_iter()
        .map(|(id, ch)| {
            lines.insert(format!("channels.{id}"), line_of(text, ch.span().start));
            (id, ch.into_inner().profile)
        })
        .collect()
}

/// `[profiles] enabled`, replaced by `OPSBOT_PROFILES` (comma-separated) when set.
fn profiles(
    raw: Option<Spanned<Vec<String>>>,
    from_env: Option<String>,
    text: &str,
    lines: &mut BTreeMap<String, usize>,
) -> Vec<String> {
    if let Some(e) = &raw {
        lines.insert("profiles".to_string(), line_of(text, e.span().start));
    }
    match from_env {
        Some(p) => p
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => raw.map(Spanned::into_inner).unwrap_or_default(),
    }
}

fn people(
    raw: BTreeMap<String, Spanned<RawPerson>>,
    text: &str,
    lines: &mut BTreeMap<String, usize>,
) -> BTreeMap<String, PersonConfig> {
    raw.into_iter()
        .map(|(name, p)| {
            lines.insert(format!("people.{name}"), line_of(text, p.span().start));
            let p = p.into_inner();
            let person = PersonConfig {
                slack: p.slack.map(OneOrMany::into_vec).unwrap_or_default(),
                discord: p.discord.map(OneOrMany::into_vec).unwrap_or_default(),
                console: p.console.map(OneOrMany::into_vec).unwrap_or_default(),
                roles: p.roles,
            };
            (name, person)
        })
        .collect()
}

fn slack_config(
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
    file: &str,
    secrets: &mut Vec<String>,
) -> Option<SlackConfig> {
    let mut read = |k: &str| match secret_from_env(env, k) {
        Ok(v) => {
            secrets.extend(v.clone());
            v
        }
        Err(msg) => {
            problems.push(problem(file, 0, msg));
            None
        }
    };
    let signing = read("SLACK_SIGNING_SECRET");
    let bot = read("SLACK_BOT_TOKEN");
    let app = read("SLACK_APP_TOKEN");
    match (signing, bot) {
        (Some(s), Some(b)) => Some(SlackConfig {
            signing_secret: s.into(),
            bot_token: b.into(),
            app_token: app.map(Into::into),
            api_url: env
                .get("OPSBOT_SLACK_API_URL")
                .cloned()
                .unwrap_or_else(|| DEFAULT_SLACK_API_URL.to_string()),
            team_id: env.get("SLACK_TEAM_ID").filter(|v| !v.is_empty()).cloned(),
            app_id: env.get("SLACK_APP_ID").filter(|v| !v.is_empty()).cloned(),
        }),
        (None, None) => None,
        _ => {
            let msg = "Slack needs both SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (only one is set)";
            problems.push(problem(file, 0, msg.into()));
            None
        }
    }
}

/// Discord needs all three of its variables (or none: disabled).
fn discord_config(
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
    file: &str,
    secrets: &mut Vec<String>,
) -> Option<DiscordConfig> {
    let token = match secret_from_env(env, "DISCORD_BOT_TOKEN") {
        Ok(v) => {
            secrets.extend(v.clone());
            v
        }
        Err(msg) => {
            problems.push(problem(file, 0, msg));
            None
        }
    };
    let get = |k: &str| env.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let key = get("DISCORD_PUBLIC_KEY");
    let app = get("DISCORD_APPLICATION_ID");
    match (key, token, app) {
        (Some(public_key), Some(t), Some(application_id)) => {
            let hex_key = public_key.len() == 64 && public_key.chars().all(|c| c.is_ascii_hexdigit());
            if !hex_key {
                problems.push(problem(
                    file,
                    0,
                    "DISCORD_PUBLIC_KEY must be 64 hex digits".into(),
                ));
            }
            if !application_id.chars().all(|c| c.is_ascii_digit()) {
                problems.push(problem(file, 0, "DISCORD_APPLICATION_ID must be a number".into()));
            }
            Some(DiscordConfig {
                public_key,
                bot_token: t.into(),
                application_id,
                api_url: get("OPSBOT_DISCORD_API_URL").unwrap_or_else(|| DEFAULT_DISCORD_API_URL.to_string()),
            })
        }
        (None, None, None) => None,
        _ => {
            let msg = "Discord needs DISCORD_PUBLIC_KEY, DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID (only some are set)";
            problems.push(problem(file, 0, msg.into()));
            None
        }
    }
}

/// The alert token, Grafana's secret and every `OPSBOT_ALERT_ROUTING_KEY_<NAME>`
/// (each also as `<VAR>_FILE`). An integration key is 32 characters, as
/// PagerDuty's are.
fn alert_auth(
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
    file: &str,
    secrets: &mut Vec<String>,
) -> AlertAuth {
    let mut read = |k: &str, problems: &mut Vec<Problem>| match secret_from_env(env, k) {
        Ok(v) => {
            secrets.extend(v.clone());
            v
        }
        Err(msg) => {
            problems.push(problem(file, 0, msg));
            None
        }
    };
    let token = read("OPSBOT_ALERT_TOKEN", problems);
    let grafana_secret = read("OPSBOT_GRAFANA_SECRET", problems);
    let names: std::collections::BTreeSet<&str> = env
        .keys()
        .filter_map(|k| k.strip_prefix(ROUTING_KEY_PREFIX))
        .map(|n| n.strip_suffix("_FILE").unwrap_or(n))
        .collect();
    let mut routing_keys = Vec::new();
    for name in names {
        let var = format!("{ROUTING_KEY_PREFIX}{name}");
        let Some(key) = read(&var, problems) else { continue };
        let good_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !good_name {
            problems.push(problem(
                file,
                0,
                format!("{var}: the name must be letters, digits and _"),
            ));
        } else if key.chars().count() != 32 {
            let msg = format!("{var} must be a 32-character integration key (PagerDuty's length)");
            problems.push(problem(file, 0, msg));
        } else {
            routing_keys.push((name.to_ascii_lowercase(), key.into()));
        }
    }
    AlertAuth {
        token: token.map(Into::into),
        grafana_secret: grafana_secret.map(Into::into),
        routing_keys,
    }
}

/// `VAR` from the environment, or the contents of the file named by `VAR_FILE`.
pub fn secret_from_env(env: &HashMap<String, String>, var: &str) -> Result<Option<String>, String> {
    if let Some(v) = env.get(var).filter(|v| !v.is_empty()) {
        return Ok(Some(v.clone()));
    }
    match env.get(&format!("{var}_FILE")) {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("{var}_FILE: cannot read the secret file: {e}")),
    }
}

/// The password part of `scheme://user:password@host/…`, if any.
pub fn dsn_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    let pw = userinfo.split_once(':')?.1;
    (!pw.is_empty()).then(|| pw.to_string())
}

fn problem(file: &str, line: usize, message: String) -> Problem {
    Problem {
        file: file.to_string(),
        line,
        message,
    }
}

fn single(path: &Path, line: usize, message: String) -> ConfigError {
    ConfigError(vec![problem(&path.display().to_string(), line, message)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_env_overrides() {
        let p = Path::new("config/opsbot.toml");
        let c = Config::parse(p, "listen = \"0.0.0.0:1\"", &env(&[])).unwrap();
        assert_eq!(c.listen, "0.0.0.0:1");
        assert_eq!(c.commands_dir, PathBuf::from("commands"));
        assert!(c.slack.is_none());
        let c = Config::parse(p, "", &env(&[("OPSBOT_LISTEN", "127.0.0.1:9")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9");
    }

    #[test]
    fn http_limits_have_defaults_and_are_checked() {
        let p = Path::new("c.toml");
        let c = Config::parse(p, "", &env(&[])).unwrap();
        assert_eq!(c.http, HttpLimits::default());
        assert_eq!(c.metrics_listen, None);
        let t = "[http]\nchat_body_bytes = 1024\nheader_timeout = \"2s\"\ncommand_burst = 3\n";
        let e = env(&[
            ("OPSBOT_METRICS_LISTEN", "127.0.0.1:9100"),
            ("OPSBOT_COMMANDS_PER_MINUTE", "600000"),
        ]);
        let c = Config::parse(p, t, &e).unwrap();
        assert_eq!(c.http.commands_per_minute, 600_000);
        assert!(Config::parse(p, "", &env(&[("OPSBOT_COMMAND_BURST", "lots")])).is_err());
        assert_eq!(
            (
                c.http.chat_body_bytes,
                c.http.header_timeout,
                c.http.command_burst
            ),
            (1024, Duration::from_secs(2), 3)
        );
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
        let err = Config::parse(
            p,
            "[http]\nmax_concurrent = 0\nbody_timeout = \"soon\"\n",
            &env(&[]),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("http.max_concurrent must be at least 1"), "{text}");
        assert!(text.contains("http.body_timeout"), "{text}");
    }

    #[test]
    fn process_allow_lists_for_every_profile_and_for_one() {
        let t = "[process]\nallow = [\"df\"]\nssh = \"/usr/bin/ssh\"\n\n[process.cap]\nallow = [\"pm2\"]\n";
        let c = Config::parse(Path::new("c.toml"), t, &env(&[])).unwrap();
        assert_eq!(c.process_allow, ["df"]);
        assert_eq!(c.process_allow_by_profile["cap"], ["pm2"]);
        assert_eq!(c.ssh_program, "/usr/bin/ssh");
        assert_eq!(
            Config::parse(Path::new("c.toml"), "", &env(&[]))
                .unwrap()
                .ssh_program,
            "ssh"
        );
        let typo = "[process]\nalow = [\"df\"]\n";
        assert!(Config::parse(Path::new("c.toml"), typo, &env(&[])).is_err());
    }

    #[test]
    fn syntax_error_has_line() {
        let p = Path::new("c.toml");
        let err = Config::parse(p, "listen = \"x\"\n\n[people.a]\nroles = [1]\n", &env(&[])).unwrap_err();
        assert_eq!(err.0[0].line, 4, "{err}");
        assert!(err.to_string().starts_with("c.toml:4: "), "{err}");
    }

    #[test]
    fn secrets_are_not_in_debug() {
        let e = env(&[
            ("SLACK_SIGNING_SECRET", "sssecret"),
            ("SLACK_BOT_TOKEN", "xoxb-tok"),
            ("OPSBOT_DATABASE_URL", "postgres://u:pw1234@h/db"),
        ]);
        let c = Config::parse(Path::new("c.toml"), "", &e).unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("sssecret") && !dbg.contains("xoxb-tok") && !dbg.contains("pw1234"),
            "{dbg}"
        );
        assert_eq!(c.secrets.len(), 3);
    }

    #[test]
    fn half_configured_slack_is_an_error() {
        let e = env(&[("SLACK_SIGNING_SECRET", "s")]);
        assert!(Config::parse(Path::new("c.toml"), "", &e).is_err());
    }

    #[test]
    fn discord_needs_all_three_variables_and_hides_its_token() {
        let key = "ab".repeat(32);
        let all = env(&[
            ("DISCORD_PUBLIC_KEY", &key),
            ("DISCORD_BOT_TOKEN", "bot-tok-9"),
            ("DISCORD_APPLICATION_ID", "42"),
        ]);
        let c = Config::parse(Path::new("c.toml"), "", &all).unwrap();
        let d = c.discord.as_ref().unwrap();
        assert_eq!(d.api_url, DEFAULT_DISCORD_API_URL);
        assert!(!format!("{c:?}").contains("bot-tok-9"));
        assert_eq!(c.secrets.len(), 1);
        let some = env(&[("DISCORD_PUBLIC_KEY", &key)]);
        assert!(Config::parse(Path::new("c.toml"), "", &some).is_err());
        let bad = env(&[
            ("DISCORD_PUBLIC_KEY", "xyz"),
            ("DISCORD_BOT_TOKEN", "t"),
            ("DISCORD_APPLICATION_ID", "42"),
        ]);
        assert!(Config::parse(Path::new("c.toml"), "", &bad).is_err());
        assert!(Config::parse(Path::new("c.toml"), "", &env(&[]))
            .unwrap()
            .discord
            .is_none());
    }

    #[test]
    fn person_identities_one_or_many() {
        let t = "[people.alice]\nslack = \"U1\"\nconsole = [\"alice\", \"al\"]\nroles = [\"sre\"]\n";
        let c = Config::parse(Path::new("c.toml"), t, &env(&[])).unwrap();
        assert_eq!(
            c.people["alice"].identities(),
            vec!["slack:U1", "console:alice", "console:al"]
        );
        assert_eq!(c.lines["people.alice"], 1);
    }
}
