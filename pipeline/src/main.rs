use clap::Parser;
use tracing_subscriber::EnvFilter;
use tributary::cli::{Cli, LogFormat, execute};
use tributary::error::Error;

// glibc's malloc keeps the ingest path's freed chunk and row-group buffers in fragmented
// arenas, so its peak memory grew with the input (1.25× at 4× the records); jemalloc's
// stays flat (README, Performance). Tuned at run time with `_RJEM_MALLOC_CONF`.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn,tributary=info,tributary_connectors=info",
        1 => "info,tributary=debug,tributary_connectors=debug",
        _ => "debug,tributary=trace",
    };
    let filter =
        EnvFilter::try_from_env("TRIBUTARY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}

fn main() -> anyhow::Result<()> {
    // Lambda's provided runtimes start `bootstrap` with no arguments: that is `tributary lambda`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let is_bootstrap = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|n| n == "bootstrap")
        })
        .unwrap_or(false);
    if is_bootstrap && args.len() == 1 {
        args.push("lambda".into());
    }
    let cli = Cli::parse_from(args);
    if cli.command.serves_queries() {
        tributary::alloc::keep_freed_pages();
    }
    init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(execute(cli)) {
        Ok(code) => std::process::exit(code),
        Err(Error::Config(d)) => {
            eprint!("{d}");
            eprintln!();
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
