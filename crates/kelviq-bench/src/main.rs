//! `kelviq-bench`: starts the server on a temporary database (SQLite, or a
//! new database on the PostgreSQL server of `--database-url`), loads N
//! customers with subscriptions, and measures the entitlement check, event
//! ingestion and resident memory. Kept out of the `kelviq` binary.

mod bench;
mod billing;
mod licenses;
mod loadgen;
mod portal;
mod promotions;
mod webhooks;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

// The server's allocator, so that the server measured is the one shipped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmark: a server on a temporary database, N customers with
/// subscriptions, then entitlement checks, event ingestion and memory,
/// printed.
#[derive(Debug, Parser)]
#[command(name = "kelviq-bench", version)]
struct Args {
    /// TOML configuration file the measured server runs with (also KELVIQ_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// PostgreSQL server to make the temporary database on (also DATABASE_URL /
    /// KELVIQ_DATABASE_URL); unset: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Customers to load, each with a subscription.
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Concurrent connections sending 100-event batches.
    #[arg(long, default_value_t = 16)]
    batch_connections: usize,
    /// Events the webhook measurement delivers.
    #[arg(long, default_value_t = 50_000)]
    webhook_events: u64,
    /// Subscriptions the billing run renews at once.
    #[arg(long, default_value_t = 100_000)]
    billing_subscriptions: u64,
    /// Runs only these measurements (comma-separated: checks, events, batches, webhooks, billing,
    /// promotions, licenses, portal; the last four run only when named).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let file = args.config.clone().or_else(|| std::env::var_os("KELVIQ_CONFIG").map(PathBuf::from));
    let names: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
    let (mut config, warnings) =
        kelviq_server::Config::load(file.as_deref(), &|k| std::env::var(k).ok().filter(|v| !v.is_empty()), &names)?;
    if let Some(url) = &args.database_url {
        config.database_url = Some(url.clone());
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let options = bench::BenchOptions {
        customers: args.customers,
        seconds: args.seconds,
        connections: args.connections,
        batch_connections: args.batch_connections,
        only: args.only,
        webhook_events: args.webhook_events,
        billing_subscriptions: args.billing_subscriptions,
        database_url: config.database_url.clone(),
        config,
    };
    kelviq_server::runtime::build(&options.config)?.block_on(bench::run(options))
}
