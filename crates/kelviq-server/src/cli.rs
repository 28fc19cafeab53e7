//! The `kelviq` command: `serve`, `migrate`, `keys`, `orgs`, `config`, `openapi`.

use crate::app::{bootstrap_demo, open_store, serve};
use crate::catalog_file::ApplyMode;
use crate::config::{Config, LogFormat};
use crate::state::AppState;
use clap::{Parser, Subcommand};
use kelviq_core::keys::{generate, KeyKind};
use kelviq_core::timefmt::iso_seconds;
use kelviq_core::{Clock, Environment, SystemClock};
use kelviq_store::{Store, StoreError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "kelviq",
    version,
    about = "Self-hostable monetization platform: billing, entitlements, usage, licenses"
)]
pub struct Cli {
    /// TOML configuration file (also KELVIQ_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Database URL: sqlite:///path/kelviq.db or postgres://… (also DATABASE_URL / KELVIQ_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Directory for the default SQLite database and other data (also KELVIQ_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server (migrates first; on an empty database creates a demo organisation and prints its keys).
    Serve {
        /// Address to listen on (also KELVIQ_LISTEN); port 0 picks a free port.
        #[arg(long)]
        listen: Option<String>,
        /// Externally visible base URL (also KELVIQ_PUBLIC_URL).
        #[arg(long)]
        public_url: Option<String>,
        /// Log format (also KELVIQ_LOG_FORMAT).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage organisations.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Export or apply an environment's catalog as a TOML file.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Manage webhook endpoints (a running server delivers to them).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Set, show or remove an environment's payment provider (Stripe).
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Read the mail the server sent (the outbox; with no SMTP server configured, the only copy).
    #[command(subcommand)]
    Mail(MailCommand),
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Print this server's OpenAPI document.
    Openapi,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProviderName {
    Stripe,
}

#[derive(Debug, Subcommand)]
enum ProvidersCommand {
    /// Charge an environment through Stripe: a test key (sk_test_…) for the sandbox, a live key for production.
    Set {
        provider: ProviderName,
        #[arg(long)]
        env: Environment,
        /// A file holding the Stripe secret key (never given on the command line).
        #[arg(long)]
        secret_key_file: PathBuf,
        /// A file holding the webhook endpoint's signing secret (whsec_…).
        #[arg(long)]
        webhook_secret_file: PathBuf,
        #[arg(long)]
        org: Option<String>,
    },
    /// Print the providers of the organisation's environments (key hints only).
    Show {
        #[arg(long)]
        org: Option<String>,
    },
    /// Remove an environment's provider.
    Remove {
        #[arg(long)]
        env: Environment,
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Print the newest messages, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret, alone, on stdout. The secret is shown only once.
    Create {
        #[arg(long)]
        kind: KeyKind,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
        /// Organisation slug; may be left out when there is only one organisation.
        #[arg(long)]
        org: Option<String>,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (prefixes only, never secrets).
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a key by its id or its prefix.
    Revoke { key: String },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Write the catalog (products, features, plans with prices and entitlements) as TOML to stdout.
    Export {
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
    },
    /// Make the environment's catalog match FILE, printing each change. Idempotent.
    Apply {
        file: PathBuf,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Make an endpoint; prints its id and its signing secret (shown this once).
    Create {
        url: String,
        /// Event types, comma-separated (default: every type).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// `kelviq` (default) or `standard` (Standard Webhooks).
        #[arg(long)]
        signature_format: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
    },
    /// List the endpoints.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
    },
    /// Delete an endpoint; its pending deliveries are cancelled.
    Delete {
        id: uuid::Uuid,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
    },
    /// Give an endpoint a new signing secret; prints it (shown this once).
    Rotate {
        id: uuid::Uuid,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
    },
    /// Queue a `webhook.test` event to an endpoint.
    Test {
        id: uuid::Uuid,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "sandbox")]
        env: Environment,
    },
}

#[derive(Debug, Subcommand)]
enum OrgsCommand {
    /// Create an organisation with sandbox keys; prints its slug and the keys.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: Option<String>,
    },
    /// List organisations.
    List,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<(Config, Vec<String>)> {
    let file = cli.config.clone().or_else(|| std::env::var_os("KELVIQ_CONFIG").map(PathBuf::from));
    let names: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
    let (mut cfg, warnings) =
        Config::load(file.as_deref(), &|k| std::env::var(k).ok().filter(|v| !v.is_empty()), &names)?;
    if let Some(url) = &cli.database_url {
        cfg.database_url = Some(url.clone());
    }
    if let Some(dir) = &cli.data_dir {
        cfg.data_dir = dir.clone();
    }
    if let Command::Serve { listen, public_url, log_format } = &cli.command {
        if let Some(v) = listen {
            cfg.listen = v.clone();
        }
        if let Some(v) = public_url {
            cfg.public_url = Some(v.clone());
        }
        if let Some(v) = log_format {
            cfg.log_format = *v;
        }
    }
    Ok((cfg, warnings))
}

fn init_tracing(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    // Colour codes only for a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (cfg, warnings) = load_config(&cli)?;
    match &cli.command {
        Command::Config => {
            print!("{}", cfg.redacted_toml());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Openapi => {
            print!("{}", crate::openapi::document());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    init_tracing(&cfg);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let runtime = crate::runtime::build(&cfg)?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { .. } => run_serve(cfg).await,
            Command::Migrate => {
                let store = open_store(&cfg).await?;
                eprintln!("migrations applied ({})", store.backend().name());
                Ok(ExitCode::SUCCESS)
            }
            Command::Keys(cmd) => run_keys(&open_store(&cfg).await?, cmd).await,
            Command::Orgs(cmd) => run_orgs(&open_store(&cfg).await?, cmd).await,
            Command::Catalog(cmd) => run_catalog(&open_store(&cfg).await?, cmd).await,
            Command::Webhooks(cmd) => run_webhooks(cfg, cmd).await,
            Command::Providers(cmd) => run_providers(cfg, cmd).await,
            Command::Mail(MailCommand::List { limit }) => {
                for m in open_store(&cfg).await?.list_mail(limit.clamp(1, 1000)).await? {
                    let state = match (&m.sent_at, &m.error) {
                        (_, Some(e)) => format!("not sent: {e}"),
                        (Some(at), None) => format!("sent {}", kelviq_core::timefmt::iso_seconds(*at)),
                        (None, None) => "kept (no SMTP server)".into(),
                    };
                    println!("#{} {} to {} ({state})", m.seq, kelviq_core::timefmt::iso_seconds(m.created_at), m.to);
                    println!("Subject: {}\n\n{}\n", m.subject, m.body.trim_end());
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Config | Command::Openapi => unreachable!("handled above"),
        }
    })
}

async fn run_serve(cfg: Config) -> anyhow::Result<ExitCode> {
    cfg.secret_key()?; // read (or made) before anything, so a bad key is an error, not a panic
    let store = open_store(&cfg).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if let Some(boot) = bootstrap_demo(&store, clock.as_ref()).await? {
        // Shown once, on stdout, so the operator can copy them; never logged.
        println!("Created the demo organisation \"{}\" with a sandbox environment.", boot.org.slug);
        println!("sandbox server key: {}", boot.server_key);
        println!("sandbox client key: {}", boot.client_key);
        println!("Keep them safe: they are stored hashed and cannot be shown again. `kelviq keys create` makes more.");
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    println!("kelviq listening on http://{addr} (database: {})", store.backend().name());
    tracing::info!(%addr, database = %kelviq_store::redact_url(&cfg.effective_database_url()), "serving");
    serve(AppState::new(store, clock, cfg), listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn pick_org(store: &Store, slug: Option<&str>) -> anyhow::Result<kelviq_store::Organization> {
    match slug {
        Some(slug) => store
            .find_organization_by_slug(slug)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no organisation with slug {slug:?}")),
        None => {
            let mut orgs = store.list_organizations().await?;
            match orgs.len() {
                0 => {
                    // A fresh database: make the demo organisation (its keys are not
                    // shown; the key asked for is).
                    bootstrap_demo(store, &SystemClock).await?;
                    Ok(store
                        .find_organization_by_slug("demo")
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("demo organisation missing"))?)
                }
                1 => Ok(orgs.remove(0)),
                _ => anyhow::bail!(
                    "there are {} organisations; name one with --org ({})",
                    orgs.len(),
                    orgs.iter().map(|o| o.slug.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    }
}

async fn run_keys(store: &Store, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    match cmd {
        KeysCommand::Create { kind, env, org, name } => {
            let org = pick_org(store, org.as_deref()).await?;
            let key = generate(kind, env);
            store.insert_api_key(org.id, env, kind, name.as_deref(), &key, now).await?;
            println!("{}", key.secret);
        }
        KeysCommand::List { org } => {
            let org_id = match org {
                Some(slug) => Some(pick_org(store, Some(&slug)).await?.id),
                None => None,
            };
            println!(
                "{:<36}  {:<12}  {:<14}  {:<6}  {:<10}  {:<20}  STATUS",
                "ID", "PREFIX", "ORG", "KIND", "ENV", "CREATED"
            );
            for k in store.list_api_keys(org_id).await? {
                let status = match k.revoked_at {
                    Some(at) => format!("revoked {}", iso_seconds(at)),
                    None => "active".into(),
                };
                println!(
                    "{:<36}  {:<12}  {:<14}  {:<6}  {:<10}  {:<20}  {status}",
                    k.id,
                    k.prefix,
                    k.org_slug,
                    k.kind,
                    k.environment,
                    iso_seconds(k.created_at)
                );
            }
        }
        KeysCommand::Revoke { key } => match store.revoke_api_key(&key, now).await {
            Ok(k) => eprintln!("revoked {} ({} {} key of {})", k.id, k.environment, k.kind, k.org_slug),
            Err(StoreError::NotFound) => anyhow::bail!("no key with id or prefix {key:?}"),
            Err(StoreError::Conflict(_)) => anyhow::bail!("{key:?} matches several keys; give the key id"),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_catalog(store: &Store, cmd: CatalogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CatalogCommand::Export { org, env } => {
            let org = pick_org(store, org.as_deref()).await?;
            let tenant = kelviq_core::Tenant { org_id: org.id, org_seq: org.seq, env };
            print!("{}", crate::catalog_file::export(store, &tenant).await?);
        }
        CatalogCommand::Apply { file, org, env, dry_run } => {
            let org = pick_org(store, org.as_deref()).await?;
            let tenant = kelviq_core::Tenant { org_id: org.id, org_seq: org.seq, env };
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let mode = if dry_run { ApplyMode::DryRun } else { ApplyMode::Write };
            let changes = crate::catalog_file::apply(store, &tenant, &text, mode, SystemClock.now()).await?;
            let verb = if dry_run { "would" } else { "did" };
            for change in &changes {
                println!("{verb} {change}");
            }
            if changes.is_empty() {
                println!("no changes: {} {env} already matches {}", org.slug, file.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(text.trim().to_string())
}

async fn run_providers(cfg: Config, cmd: ProvidersCommand) -> anyhow::Result<ExitCode> {
    cfg.secret_key()?; // read (or made) before anything, so a bad key is an error, not a panic
    let store = open_store(&cfg).await?;
    let state = AppState::new(store.clone(), Arc::new(SystemClock), cfg);
    let tenant = |org: &kelviq_store::Organization, env: Environment| kelviq_core::Tenant {
        org_id: org.id,
        org_seq: org.seq,
        env,
    };
    let failed = |e: crate::error::ServiceError| match e {
        crate::error::ServiceError::Fields(f) => anyhow::anyhow!("{f}"),
        other => anyhow::anyhow!("{other}"),
    };
    match cmd {
        ProvidersCommand::Set { provider: ProviderName::Stripe, env, secret_key_file, webhook_secret_file, org } => {
            let org = pick_org(&store, org.as_deref()).await?;
            let (key, hook) = (read_secret(&secret_key_file)?, read_secret(&webhook_secret_file)?);
            let info = crate::providers::set_stripe(&state, &tenant(&org, env), &key, &hook).await.map_err(failed)?;
            println!("{} {}: stripe ({})", org.slug, env.as_str(), info.key_hint);
        }
        ProvidersCommand::Show { org } => {
            let org = pick_org(&store, org.as_deref()).await?;
            for env in [Environment::Sandbox, Environment::Production] {
                match crate::providers::show(&state, &tenant(&org, env)).await.map_err(failed)? {
                    Some(p) => println!(
                        "{} {}: {} ({}), set {}",
                        org.slug,
                        env.as_str(),
                        p.provider,
                        p.key_hint,
                        kelviq_core::timefmt::iso_seconds(p.modified_at)
                    ),
                    None if env == Environment::Sandbox => {
                        println!("{} sandbox: the sandbox provider (test cards)", org.slug)
                    }
                    None => println!("{} production: none (payments are refused)", org.slug),
                }
            }
        }
        ProvidersCommand::Remove { env, org } => {
            let org = pick_org(&store, org.as_deref()).await?;
            let removed = crate::providers::remove(&state, &tenant(&org, env)).await.map_err(failed)?;
            println!(
                "{} {}: {}",
                org.slug,
                env.as_str(),
                if removed { "provider removed" } else { "no provider was set" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_webhooks(cfg: Config, cmd: WebhooksCommand) -> anyhow::Result<ExitCode> {
    use crate::webhooks::endpoints::{self as hooks, EndpointFields};
    cfg.secret_key()?; // read (or made) before anything, so a bad key is an error, not a panic
    let store = open_store(&cfg).await?;
    let state = AppState::new(store.clone(), Arc::new(SystemClock), cfg);
    let tenant = |org: Option<String>, env: Environment| {
        let store = store.clone();
        async move {
            let org = pick_org(&store, org.as_deref()).await?;
            anyhow::Ok(kelviq_core::Tenant { org_id: org.id, org_seq: org.seq, env })
        }
    };
    let failed = |e: crate::error::ServiceError| match e {
        crate::error::ServiceError::Fields(f) => anyhow::anyhow!("{f}"),
        other => anyhow::anyhow!("{other}"),
    };
    match cmd {
        WebhooksCommand::Create { url, events, description, signature_format, org, env } => {
            let t = tenant(org, env).await?;
            let fields = EndpointFields {
                url: Some(url),
                description,
                event_types: Some(events),
                signature_format,
                ..EndpointFields::default()
            };
            let (endpoint, secret) = hooks::create(&state, &t, fields).await.map_err(failed)?;
            println!("endpoint: {}", endpoint.id);
            println!("signing secret: {secret}");
            println!("Keep it safe: it cannot be shown again. `kelviq webhooks rotate` makes a new one.");
        }
        WebhooksCommand::List { org, env } => {
            let t = tenant(org, env).await?;
            let (_, endpoints) = store.list_webhook_endpoints(&t, 10_000, 0).await?;
            for e in endpoints {
                let types = if e.event_types.is_empty() { "all events".to_string() } else { e.event_types.join(",") };
                let state = if e.enabled {
                    "enabled".to_string()
                } else {
                    format!("disabled ({})", e.disabled_reason.unwrap_or_default())
                };
                println!("{}  {}  {}  {}", e.id, e.url, types, state);
            }
        }
        WebhooksCommand::Delete { id, org, env } => {
            hooks::delete(&state, &tenant(org, env).await?, id).await.map_err(failed)?;
            println!("deleted {id}");
        }
        WebhooksCommand::Rotate { id, org, env } => {
            let secret = hooks::rotate(&state, &tenant(org, env).await?, id).await.map_err(failed)?;
            println!("signing secret: {secret}");
        }
        WebhooksCommand::Test { id, org, env } => {
            let event = hooks::send_test(&state, &tenant(org, env).await?, id).await.map_err(failed)?;
            println!("queued test event {event}; a running server delivers it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_orgs(store: &Store, cmd: OrgsCommand) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    match cmd {
        OrgsCommand::Create { name, slug } => {
            let slug = slug.unwrap_or_else(|| kelviq_core::ids::slugify(&name));
            if slug.is_empty() {
                anyhow::bail!("cannot make a slug from {name:?}; give --slug");
            }
            let org = match store.create_organization(&name, &slug, now).await {
                Err(StoreError::Conflict(_)) => anyhow::bail!("an organisation with slug {slug:?} already exists"),
                other => other?,
            };
            let server = generate(KeyKind::Server, Environment::Sandbox);
            let client = generate(KeyKind::Client, Environment::Sandbox);
            store.insert_api_key(org.id, Environment::Sandbox, KeyKind::Server, None, &server, now).await?;
            store.insert_api_key(org.id, Environment::Sandbox, KeyKind::Client, None, &client, now).await?;
            println!("organisation: {}", org.slug);
            println!("sandbox server key: {}", server.secret);
            println!("sandbox client key: {}", client.secret);
        }
        OrgsCommand::List => {
            for o in store.list_organizations().await? {
                println!("{}\t{}\t{}", o.slug, o.id, o.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
