//! `credit-node`: parses the command line and runs it. See `credit_node::cli`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use credit_node::cli::{Cli, Command, run};
use tracing_subscriber::EnvFilter;

/// sled copies and frees tree nodes on every insert; mimalloc makes the push path about a
/// third faster than glibc's allocator on this workload (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log at info by default; client commands keep stdout and stderr for results.
    let default = match cli.command {
        Command::Serve { .. } | Command::Demo { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    // A blocking thread stuck in the store (sled looping on a damaged page) must not keep
    // a stopped node alive: dropping the runtime would wait for it for ever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = &*e;
            if let Some(why) = credit_node::identity::client::refused_certificate(e) {
                eprintln!("error: the node refused this certificate: {why} (R-NODE-3)");
            }
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(1)
        }
    }
}
