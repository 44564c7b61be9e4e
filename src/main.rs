//! The `opsbot` command line. The only place that uses `anyhow`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use opsbot::app;
use opsbot::clock::{SharedClock, SystemClock};
use opsbot::config::{Config, DEFAULT_CONFIG};
use opsbot::engine::outbox::Pacing;
use opsbot::engine::Invocation;
use opsbot::store::Store;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `println!` that ignores a closed stdout (`opsbot commands | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "opsbot",
    version,
    about = "ChatOps bot: runbook commands with roles, approvals and an audit chain"
)]
struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "OPSBOT_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP server and engine (migrates the store first).
    Serve,
    /// Validate config and catalog; prints `file:line: problem` and exits 1 on any.
    Check,
    /// List the catalog.
    Commands {
        #[arg(long)]
        json: bool,
    },
    /// Run one chat command through the full pipeline as a console identity.
    Run {
        /// Console identity, e.g. console:alice (default: console:$USER).
        /// Chat identities (slack:…, discord:…) are refused.
        #[arg(long = "as")]
        identity: Option<String>,
        /// Channel id; its profile binding picks the system (default: console).
        #[arg(long, default_value = "console")]
        channel: Option<String>,
        /// The command text, e.g. "/queue stats".
        text: String,
    },
    /// Apply store migrations.
    Migrate,
    /// Bulk-overwrite the Discord application's commands from the catalog.
    DiscordRegister {
        /// Register in this guild only (updates at once; global ones take a while).
        #[arg(long)]
        guild: Option<String>,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        what: AuditCmd,
    },
    /// Incident tools.
    Incident {
        #[command(subcommand)]
        what: IncidentCmd,
    },
}

#[derive(Subcommand)]
enum IncidentCmd {
    /// Print an incident's timeline as a postmortem skeleton.
    Export {
        /// The incident's id (`12` or `#12`).
        id: String,
        #[arg(long, value_enum, default_value = "md")]
        format: ExportFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Md,
    Json,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the audit log's hash chain from the first entry to the last, and
    /// its end against the stored head.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match Config::load(&cli.config, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    init_tracing(&config, matches!(cli.command, Cmd::Serve));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(cli.command, config, env)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(config: &Config, serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dispatch(cmd: Cmd, config: Config, env: HashMap<String, String>) -> anyhow::Result<u8> {
    let clock: SharedClock = Arc::new(SystemClock);
    match cmd {
        Cmd::Check => Ok(check(&config, &env)),
        Cmd::Commands { json } => commands(&config, &env, json),
        Cmd::Migrate => {
            let store = Store::connect(config.database_url.expose_secret()).await?;
            store.migrate().await?;
            say!("migrations applied");
            Ok(0)
        }
        Cmd::Audit {
            what: AuditCmd::Verify,
        } => audit_verify(&config).await,
        Cmd::Run {
            identity,
            channel,
            text,
        } => {
            let os_user = env.get("USER").or_else(|| env.get("LOGNAME"));
            let identity =
                match opsbot::auth::console_identity(identity.as_deref(), os_user.map(String::as_str)) {
                    Ok(i) => i,
                    Err(why) => {
                        eprintln!("{why}");
                        return Ok(2);
                    }
                };
            let pipeline = app::build(&config, &env, clock.clone()).await?;
            let now = clock.now_ms();
            // Alive long enough for an inline execution: a running `serve`
            // never takes this process's claims for a crashed one's.
            pipeline.store.heartbeat(now, now + 600_000).await?;
            let inv = Invocation::console(&identity, channel, &text, now);
            // Card edits of chat-requested approvals are queued by the step
            // itself; a running `serve` delivers them.
            let reply = pipeline.handle(&inv).await;
            say!("{}", reply.text);
            pipeline.store.close().await;
            Ok(reply.outcome.exit_code() as u8)
        }
        Cmd::Incident {
            what: IncidentCmd::Export { id, format },
        } => incident_export(&config, &id, format).await,
        Cmd::DiscordRegister { guild } => discord_register(&config, &env, clock, guild.as_deref()).await,
        Cmd::Serve => serve(&config, &env, clock).await,
    }
}

fn check(config: &Config, env: &HashMap<String, String>) -> u8 {
    match app::validate(config, env) {
        Ok((cat, _)) => {
            let profiles: std::collections::BTreeSet<&str> =
                cat.commands.iter().map(|c| c.profile.as_str()).collect();
            say!(
                "ok: {} commands in {} profiles, {} targets, {} people; enabled: {}",
                cat.commands.len(),
                profiles.len(),
                cat.targets.len(),
                config.people.len(),
                config.profiles.join(", ")
            );
            for (t, users) in cat.unset_targets() {
                let names: Vec<String> = users
                    .iter()
                    .map(|c| format!("/{} ({})", c.name, c.profile))
                    .collect();
                let refused = match names.is_empty() {
                    true => "no command calls it".to_string(),
                    false => format!("refused until then: {}", names.join(", ")),
                };
                say!(
                    "note: target `{}` has no URL: set {} ({refused})",
                    t.name,
                    opsbot::catalog::target_env_var(&t.name)
                );
            }
            0
        }
        Err(problems) => {
            for p in &problems {
                say!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            1
        }
    }
}

fn commands(config: &Config, env: &HashMap<String, String>, json: bool) -> anyhow::Result<u8> {
    let (cat, _) = app::validate(config, env)
        .map_err(|ps| anyhow::anyhow!(ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")))
        .context("the catalog is invalid (run `opsbot check`)")?;
    if json {
        let list: Vec<_> = cat
            .commands
            .iter()
            .map(|c| {
                let mut entry = serde_json::json!({
                    "profile": c.profile,
                    "name": c.name,
                    "usage": c.usage(),
                    "summary": c.summary,
                    "risk": c.risk,
                    "roles": c.roles,
                    "approval": c.approve,
                    "action_kind": c.action.kind(),
                });
                // Variants with approvals of their own: each form and its policy.
                let forms: Vec<_> = variant_forms(c)
                    .map(|(form, choice, policy)| {
                        serde_json::json!({ "form": form, "value": choice.value, "only_args": choice.args, "approval": policy })
                    })
                    .collect();
                if !forms.is_empty() {
                    entry["variants"] = serde_json::json!({ "by": c.variants().map(|v| &v.by), "forms": forms });
                }
                entry
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for c in &cat.commands {
            let mut approval = c
                .approve
                .as_ref()
                .map(|a| format!(" · approval: {}", a.roles.join("/")))
                .unwrap_or_default();
            for (form, _, policy) in variant_forms(c) {
                let roles = policy.map_or("none".into(), |p| p.roles.join("/"));
                approval.push_str(&format!(" · {form}: approval {roles}"));
            }
            say!(
                "{:<8} {:<50} {} · {}{approval}\n         {}",
                c.profile,
                c.usage(),
                c.risk.as_str(),
                c.roles.join(","),
                c.summary
            );
        }
    }
    Ok(0)
}

/// Each variant of a command whose variants carry approvals of their own:
/// how it is picked, the choice, the policy it needs (its own or the command's).
fn variant_forms(
    c: &opsbot::catalog::Command,
) -> impl Iterator<
    Item = (
        String,
        &opsbot::catalog::Choice,
        Option<&opsbot::catalog::ApprovePolicy>,
    ),
> {
    let own = c.variant_policies().next().is_some();
    c.variants()
        .filter(|_| own)
        .into_iter()
        .flat_map(|v| v.choices.iter())
        .map(|choice| {
            (
                c.choice_label(choice),
                choice,
                choice.policy.as_ref().or(c.approve.as_ref()),
            )
        })
}

async fn audit_verify(config: &Config) -> anyhow::Result<u8> {
    let store = Store::connect(config.database_url.expose_secret()).await?;
    store.migrate().await?;
    // The head first: entries appended while we read may follow it.
    let head = store.audit_head().await?;
    let records = store.audit_records().await?;
    match opsbot::audit::verify(&records, &head) {
        Ok(n) => {
            say!("ok: {n} audit entries, chain intact");
            Ok(0)
        }
        Err(e) => {
            say!("audit chain broken: {e}");
            Ok(1)
        }
    }
}

async fn incident_export(config: &Config, id: &str, format: ExportFormat) -> anyhow::Result<u8> {
    let Ok(id) = id.trim_start_matches('#').parse::<i64>() else {
        say!("`{id}` is not an incident id (they look like 12 or #12)");
        return Ok(2);
    };
    let store = Store::connect(config.database_url.expose_secret()).await?;
    store.migrate().await?;
    let Some(inc) = store.incident(id).await? else {
        say!("there is no incident #{id}");
        return Ok(1);
    };
    let events = store.incident_events(id).await?;
    match format {
        ExportFormat::Md => say!("{}", opsbot::incident::export::markdown(&inc, &events)),
        ExportFormat::Json => say!(
            "{}",
            serde_json::to_string_pretty(&opsbot::incident::export::json(&inc, &events))?
        ),
    }
    Ok(0)
}

async fn discord_register(
    config: &Config,
    env: &HashMap<String, String>,
    clock: SharedClock,
    guild: Option<&str>,
) -> anyhow::Result<u8> {
    let Some(discord) = &config.discord else {
        anyhow::bail!(
            "Discord is not configured: set DISCORD_PUBLIC_KEY, DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID"
        );
    };
    // `validate` already refuses entries Discord cannot hold (named file:line).
    let (cat, _) = match app::validate(config, env) {
        Ok(v) => v,
        Err(problems) => {
            for p in &problems {
                say!("{p}");
            }
            eprintln!("{} problem(s) found; nothing registered", problems.len());
            return Ok(1);
        }
    };
    let commands = opsbot::chat::discord::register::commands(&cat, &config.profiles)
        .map_err(|ps| anyhow::anyhow!(ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")))?;
    let api = app::discord_api(discord, clock)?;
    let n = api
        .overwrite_commands(guild, &commands)
        .await
        .context("Discord refused the commands")?;
    match guild {
        Some(g) => say!("registered {n} commands in guild {g}"),
        None => say!("registered {n} global commands (Discord may take up to an hour to show them)"),
    }
    Ok(0)
}

async fn serve(config: &Config, env: &HashMap<String, String>, clock: SharedClock) -> anyhow::Result<u8> {
    let _lock = opsbot::instance::lock(config.database_url.expose_secret())?;
    let pipeline = app::build(config, env, clock).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "opsbot is serving");
    let store = pipeline.store.clone();
    if config.slack.is_some() {
        tracing::info!("Slack is enabled: /slack/commands, /slack/interactions, /slack/events");
    }
    if config.discord.is_some() {
        tracing::info!("Discord is enabled: /discord/interactions");
    }
    let chats = app::Chats {
        slack: config.slack.as_ref(),
        discord: config.discord.as_ref(),
    };
    let edge = app::Edge::from_config(config);
    let services = app::start(pipeline, chats, Pacing::default(), &edge)?;
    // Once the background loops have run their first rounds (milliseconds).
    tokio::spawn(async {
        tokio::time::sleep(opsbot::memory::SETTLE).await;
        match opsbot::memory::release_code_pages() {
            Ok(bytes) => tracing::debug!(kb = bytes / 1024, "start-up code pages released"),
            Err(e) => tracing::warn!(error = %e, "cannot release the start-up code pages"),
        }
    });
    let header_timeout = config.http.header_timeout;
    let stop = futures::FutureExt::shared(opsbot::server::shutdown_signal());
    let metrics = match (&config.metrics_listen, services.metrics.clone()) {
        (Some(addr), Some(router)) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (OPSBOT_METRICS_LISTEN)"))?;
            tracing::info!(listen = %addr, "/metrics is served apart");
            Some(tokio::spawn(opsbot::server::edge::serve(
                l,
                router,
                header_timeout,
                stop.clone(),
            )))
        }
        _ => None,
    };
    opsbot::server::edge::serve(listener, services.router.clone(), header_timeout, stop).await?;
    if let Some(m) = metrics {
        m.await??;
    }
    if services.stop().await > 0 {
        tracing::error!("background tasks panicked while serving (see above)");
    }
    store.close().await;
    Ok(0)
}
