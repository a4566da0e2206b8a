//! `ringlog-registry`: the schema registry as a process of its own, pointed
//! at any broker (the broker also runs one itself, `--schema-registry-listen`).
//! Registries on one broker share its `_schemas` topic and agree.

use clap::Parser;
use std::net::SocketAddr;

/// Confluent Schema Registry's REST API over a ringlog broker's `_schemas` topic.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The broker's native listener (`HOST:PORT`, or several, comma-separated).
    #[arg(long, env = "RINGLOG_BROKER", default_value = "127.0.0.1:9292")]
    broker: String,
    /// Where to serve the REST API.
    #[arg(
        long,
        env = "RINGLOG_SCHEMA_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    listen: SocketAddr,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLOG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringlog-registry: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        // Scripts and tests read this line: keep its shape.
        println!("ringlog-registry on http://{}", listener.local_addr()?);
        let known = std::sync::Arc::new(ringlog_registry::validation::Known::default());
        ringlog_registry::serve(listener, args.broker, known).await
    });
    if let Err(e) = result {
        eprintln!("ringlog-registry: {e}");
        std::process::exit(1);
    }
}
