//! Wiring: config → catalog, people, store, executor → one `Pipeline`.
//! `main` and the test harness both build the bot through here.

use crate::auth::{Directory, Roles};
use crate::catalog::{self, Catalog, Problem};
use crate::chat::discord::api::DiscordApi;
use crate::chat::discord::inbound::DiscordInbound;
use crate::chat::discord::render::DiscordRenderer;
use crate::chat::slack::api::SlackApi;
use crate::chat::slack::inbound::SlackInbound;
use crate::chat::slack::render::SlackRenderer;
use crate::clock::SharedClock;
use crate::config::{Config, DiscordConfig, HttpLimits, SlackConfig};
use crate::engine::committer::Committer;
use crate::engine::outbox::{spawn_sender, Delivery, Outbox, Pacing};
use crate::engine::{ActorRateLimit, AuditSink, InboxWriter};
use crate::engine::{Alarm, Pipeline, Renderers, Signal};
use crate::exec::{Executor, Limits};
use crate::metrics::Metrics;
use crate::server::edge;
use crate::store::{Store, StoreError};
use secrecy::ExposeSecret;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("slack: {0}")]
    Slack(String),
    #[error("discord: {0}")]
    Discord(String),
}

/// Loads the catalog and people and cross-checks them with the config.
/// Every problem is returned, each with `file:line`.
pub fn validate(
    config: &Config,
    env: &HashMap<String, String>,
) -> Result<(Catalog, Directory), Vec<Problem>> {
    let roles = Roles::new(&config.roles);
    let names = roles.names();
    let mut problems = config_problems(config, &names);
    let ctx = catalog::Context { roles: &names, env };
    let cat = match catalog::load_dir(&config.commands_dir, &ctx) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.extend(e.problems);
            None
        }
    };
    if let Some(cat) = &cat {
        problems.extend(cross_problems(config, cat));
        if config.discord.is_some() {
            let mapped = crate::chat::discord::register::commands(cat, &config.profiles);
            problems.extend(mapped.err().unwrap_or_default());
        }
    }
    let dir = Directory::new(&config.people, &roles).map_err(|errs| {
        errs.into_iter()
            .map(|(who, m)| config_problem(config, line(config, &format!("people.{who}")), m))
            .collect::<Vec<_>>()
    });
    match (cat, dir) {
        (Some(c), Ok(d)) if problems.is_empty() => Ok((c, d)),
        (_, Err(more)) => {
            problems.extend(more);
            Err(problems)
        }
        _ => Err(problems),
    }
}

/// The line where `key` (`people.alice`, `channels.C1`, `profiles`) was declared.
fn line(config: &Config, key: &str) -> usize {
    config.lines.get(key).copied().unwrap_or(0)
}

fn config_problem(config: &Config, line: usize, message: String) -> Problem {
    Problem {
        file: config.path.display().to_string(),
        line,
        message,
    }
}

/// The severity policies, calendars and rotations of `config`, checked
/// against its people and roles; every problem with `file:line`.
pub fn policies(config: &Config, roles: &BTreeSet<String>) -> (crate::policy::Policies, Vec<Problem>) {
    let people: BTreeSet<String> = config.people.keys().cloned().collect();
    let known = crate::policy::Known {
        people: &people,
        roles,
    };
    let file = config.path.display().to_string();
    let (policies, mut problems) =
        crate::policy::load(config.policy_tables.clone(), &config.source, &file, &known);
    for (role, cal) in &config.role_calendars {
        if !policies.calendars.contains_key(cal) {
            let line = config
                .source
                .lines()
                .position(|l| l.trim_start().starts_with(&format!("[roles.{role}]")));
            problems.push(config_problem(
                config,
                line.map_or(0, |l| l + 1),
                format!("roles.{role}: `available` names unknown calendar `{cal}`"),
            ));
        }
    }
    let mut policies = policies;
    policies.role_calendars = config.role_calendars.clone();
    (policies, problems)
}

/// The alert route tree of `config` (`[alerts]`), checked against the
/// severity policies; every problem with `file:line`.
pub fn alert_routes(
    config: &Config,
    policies: &crate::policy::Policies,
) -> (crate::alerts::route::RouteTree, Vec<Problem>) {
    let file = config.path.display().to_string();
    crate::alerts::route::load(
        config.alert_routes.as_ref(),
        &config.source,
        &file,
        &policies.profiles,
    )
}

fn config_problems(config: &Config, roles: &BTreeSet<String>) -> Vec<Problem> {
    let (policies, mut out) = policies(config, roles);
    out.extend(alert_routes(config, &policies).1);
    for (name, p) in &config.people {
        let line = line(config, &format!("people.{name}"));
        for r in &p.roles {
            if !roles.contains(r) {
                let known = roles.iter().cloned().collect::<Vec<_>>().join(", ");
                out.push(config_problem(
                    config,
                    line,
                    format!("person `{name}`: unknown role `{r}` (known: {known})"),
                ));
            }
        }
        if p.identities().is_empty() {
            out.push(config_problem(
                config,
                line,
                format!("person `{name}` has no identity (slack, discord or console)"),
            ));
        }
    }
    if config.profiles.is_empty() {
        out.push(config_problem(
            config,
            0,
            "no profile is enabled: set [profiles] enabled = [\"queue\", …]".into(),
        ));
    }
    out
}

fn cross_problems(config: &Config, cat: &Catalog) -> Vec<Problem> {
    let mut out = Vec::new();
    let known: BTreeSet<&str> = cat.commands.iter().map(|c| c.profile.as_str()).collect();
    for p in &config.profiles {
        if !known.contains(p.as_str()) {
            let list = known.iter().copied().collect::<Vec<_>>().join(", ");
            out.push(config_problem(
                config,
                line(config, "profiles"),
                format!("profile `{p}` is enabled but has no commands (profiles in the catalog: {list})"),
            ));
        }
    }
    for (channel, p) in &config.channels {
        if !config.profiles.contains(p) {
            out.push(config_problem(
                config,
                line(config, &format!("channels.{channel}")),
                format!("channel `{channel}` is bound to profile `{p}`, which is not enabled"),
            ));
        }
    }
    let limits = exec_limits(config);
    for c in &cat.commands {
        // Each process step of a seq too.
        for p in c.action.leaves().into_iter().filter_map(|a| match a {
            catalog::Action::Process(p) => Some(p),
            _ => None,
        }) {
            let prog = p.argv.first().map(String::as_str).unwrap_or_default();
            if !limits.allows(&c.profile, prog) {
                out.push(Problem {
                    file: c.location.file.clone(),
                    line: c.location.line,
                    message: format!(
                        "program `{prog}` is not in [process] allow nor [process.{}] allow of the config",
                        c.profile
                    ),
                });
            }
        }
    }
    out
}

/// The executor's limits from the config.
fn exec_limits(config: &Config) -> Limits {
    Limits {
        output_chars: config.limits.output_chars,
        process_allow: config.process_allow.clone(),
        process_allow_by_profile: config.process_allow_by_profile.clone(),
        ssh_program: config.ssh_program.clone(),
        default_timeout: config.limits.exec_timeout,
    }
}

/// Builds the pipeline: validates, connects and migrates the store.
pub async fn build(
    config: &Config,
    env: &HashMap<String, String>,
    clock: SharedClock,
) -> Result<Pipeline, BuildError> {
    let (catalog, directory) = validate(config, env).map_err(BuildError::Invalid)?;
    let store = Store::connect(config.database_url.expose_secret()).await?;
    store.migrate().await?;
    Ok(assemble(config, catalog, directory, store, env, clock))
}

/// Puts already-built parts together (tests use this with their own store).
/// `env` is the bot's environment, the one the config was loaded with: the
/// executor reads its secrets from it, never from the process environment.
pub fn assemble(
    config: &Config,
    catalog: Catalog,
    directory: Directory,
    store: Store,
    env: &HashMap<String, String>,
    clock: SharedClock,
) -> Pipeline {
    let mut secrets = config.secrets.clone();
    for t in catalog.targets.values() {
        secrets.extend(crate::config::dsn_password(&t.url).map(Into::into));
    }
    let limits = exec_limits(config);
    let pipeline_store = store.clone();
    let roles = Roles::new(&config.roles).names();
    let (policies, _) = policies(config, &roles);
    Pipeline {
        catalog: Arc::new(catalog),
        directory: Arc::new(directory),
        store,
        executor: Arc::new(Executor::new(limits, secrets, env.clone()).with_clock(clock.clone())),
        clock,
        profiles: Arc::new(config.profiles.clone()),
        channels: Arc::new(config.channels.clone()),
        metrics: Arc::new(Metrics::default()),
        renderers: Arc::new(renderers()),
        outbox: Signal::default(),
        alerts: Signal::default(),
        alarm: Alarm::default(),
        committer: Committer::spawn(pipeline_store.clone()),
        policies: Arc::new(policies),
    }
}

/// Every chat platform's renderer: the one place that lists platforms for
/// the engine. (Their inbound routes and senders are wired in [`start`].)
fn renderers() -> Renderers {
    Renderers::default()
        .with(Arc::new(SlackRenderer))
        .with(Arc::new(DiscordRenderer))
}

/// The chat platforms to serve (each absent: its routes answer 404).
#[derive(Debug, Clone, Copy, Default)]
pub struct Chats<'a> {
    pub slack: Option<&'a SlackConfig>,
    pub discord: Option<&'a DiscordConfig>,
}

/// The running parts around a pipeline: the HTTP router and, when a chat is
/// configured, the inbox writer, the worker and one outbox sender per chat.
pub struct Services {
    pub router: axum::Router,
    /// `/metrics` alone, when it is served on its own listener (otherwise
    /// it is part of `router`).
    pub metrics: Option<axum::Router>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Services {
    /// Stops the background tasks gracefully (running requests finish, sends
    /// in flight complete), aborting whatever is still busy after 15 s.
    /// Answers how many of the tasks panicked (each is logged).
    pub async fn stop(self) -> usize {
        let _ = self.stop.send(true);
        let mut panicked = 0;
        for mut t in self.tasks {
            match tokio::time::timeout(std::time::Duration::from_secs(15), &mut t).await {
                Err(_) => t.abort(),
                Ok(Err(e)) if e.is_panic() => {
                    tracing::error!(error = %e, "a background task panicked");
                    panicked += 1;
                }
                Ok(_) => {}
            }
        }
        panicked
    }
}

/// How the HTTP edge is set up: its limits, whether `/metrics` gets its own
/// listener (`OPSBOT_METRICS_LISTEN`), and the alert endpoints' credentials
/// and routes (the default: no token, so they refuse all; one root route).
#[derive(Debug, Clone, Default)]
pub struct Edge {
    pub limits: HttpLimits,
    pub metrics_apart: bool,
    pub alerts: crate::alerts::inbound::Settings,
}

impl Edge {
    /// The edge of a config that [`validate`] accepted (`build` checks
    /// first, so the alert routes load here without problems).
    pub fn from_config(config: &Config) -> Edge {
        let roles = Roles::new(&config.roles).names();
        let (routes, _) = alert_routes(config, &policies(config, &roles).0);
        Edge {
            limits: config.http.clone(),
            metrics_apart: config.metrics_listen.is_some(),
            alerts: crate::alerts::inbound::Settings {
                auth: config.alert_auth.clone(),
                routes: Arc::new(routes),
            },
        }
    }
}

/// Starts everything that runs beside the pipeline.
pub fn start(
    pipeline: Pipeline,
    chats: Chats<'_>,
    pacing: Pacing,
    edge: &Edge,
) -> Result<Services, BuildError> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let limits = &edge.limits;
    let mut router = crate::server::router(pipeline.clone());
    let metrics = crate::server::metrics_router(pipeline.metrics.clone());
    let metrics = if edge.metrics_apart {
        Some(metrics)
    } else {
        router = router.merge(metrics);
        None
    };
    let mut tasks = vec![crate::engine::housekeeping::spawn(
        pipeline.store.clone(),
        pipeline.clock.clone(),
        stopped.clone(),
    )];
    tasks.push(crate::server::spawn_gauges(
        pipeline.store.clone(),
        pipeline.metrics.clone(),
        limits.metrics_refresh,
        stopped.clone(),
    ));
    tasks.push(crate::engine::timers::spawn(pipeline.clone(), stopped.clone()));
    tasks.push(crate::engine::recovery::spawn(pipeline.clone(), stopped.clone()));
    tasks.push(crate::engine::alert_poster::spawn(
        pipeline.clone(),
        pacing.per_channel_per_sec,
        stopped.clone(),
    ));
    let alert_routes = crate::alerts::inbound::routes(
        edge.alerts.clone(),
        pipeline.store.clone(),
        pipeline.clock.clone(),
        pipeline.alerts.clone(),
    );
    router = router.merge(edge::alert_routes(alert_routes, limits));
    let done = |router: axum::Router, tasks| {
        let router = edge::limit_concurrency(router, limits.max_concurrent, pipeline.metrics.clone());
        Ok(Services {
            router,
            metrics: metrics.clone(),
            stop: stop.clone(),
            tasks,
        })
    };
    if chats.slack.is_none() && chats.discord.is_none() {
        return done(router, tasks);
    }
    let sender = |delivery: Delivery| {
        spawn_sender(
            Outbox::new(pipeline.store.clone(), pipeline.outbox.clone()),
            delivery,
            pipeline.clock.clone(),
            pacing,
            stopped.clone(),
        )
    };
    let (stored, to_process) = tokio::sync::mpsc::channel(1024);
    let writer = InboxWriter::spawn(pipeline.store.clone(), stored);
    let audit = AuditSink::spawn(pipeline.store.clone());
    if let Some(cfg) = chats.slack {
        let api = SlackApi::new(&cfg.api_url, cfg.bot_token.clone())
            .map_err(|e| BuildError::Slack(e.to_string()))?;
        tasks.push(sender(Delivery {
            platform: crate::chat::slack::render::PLATFORM,
            api: Arc::new(api),
        }));
        let slack_routes = crate::chat::slack::inbound::routes(SlackInbound {
            signing_secret: cfg.signing_secret.clone(),
            writer: writer.clone(),
            audit: audit.clone(),
            rate: ActorRateLimit::new(limits.commands_per_minute, limits.command_burst),
            team_id: cfg.team_id.clone(),
            app_id: cfg.app_id.clone(),
            pipeline: pipeline.clone(),
        });
        router = router.merge(edge::chat_routes(slack_routes, limits));
    }
    if let Some(cfg) = chats.discord {
        let verifier =
            crate::chat::discord::verify::verifier(&cfg.public_key).map_err(BuildError::Discord)?;
        let api = discord_api(cfg, pipeline.clock.clone())?;
        tasks.push(sender(Delivery {
            platform: crate::chat::discord::render::PLATFORM,
            api: Arc::new(api),
        }));
        let discord_routes = crate::chat::discord::inbound::routes(DiscordInbound {
            verifier,
            writer: writer.clone(),
            audit: audit.clone(),
            rate: ActorRateLimit::new(limits.commands_per_minute, limits.command_burst),
            pipeline: pipeline.clone(),
        });
        router = router.merge(edge::chat_routes(discord_routes, limits));
    }
    let inputs = crate::engine::worker::Inputs {
        stored: to_process,
        pressure: writer.pressure(),
        stop: stopped.clone(),
    };
    tasks.push(crate::engine::worker::spawn(pipeline.clone(), inputs));
    done(router, tasks)
}

/// The Discord REST client for `cfg` (the outbox's, and `discord-register`'s).
pub fn discord_api(cfg: &DiscordConfig, clock: SharedClock) -> Result<DiscordApi, BuildError> {
    DiscordApi::new(&cfg.api_url, &cfg.application_id, cfg.bot_token.clone(), clock)
        .map_err(|e| BuildError::Discord(e.to_string()))
}
