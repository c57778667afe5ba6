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

/// For the query commands: jemalloc keeps freed pages for reuse instead of returning them
/// to the kernel over its 10 s decay. Aggregates that collect values (percentiles, distinct
/// sets) free and re-fault hundreds of MB a query; with purging on, a fifth of q03's time
/// was page faults (interleaved A/B: q03 −40 %, q04 −16 %, geometric mean −7 to −10 %). The
/// cost is a server that stays at its high-water mark. Ingest keeps the defaults: no gain
/// there, +3 % peak memory. `_RJEM_MALLOC_CONF`, when set, decides instead.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
fn keep_freed_pages() {
    if std::env::var_os("_RJEM_MALLOC_CONF").is_some() {
        return;
    }
    let set = |name: &str, value: isize| {
        let Ok(name) = std::ffi::CString::new(name) else {
            return;
        };
        let mut value = value;
        // SAFETY: a NUL-terminated name and a pointer to an `ssize_t`-sized value with its
        // size, as jemalloc's `mallctl` documents for these `ssize_t` settings; no old value
        // is read. A failure (an arena not yet created) leaves that arena as it was.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&raw mut value).cast(),
                std::mem::size_of::<isize>(),
            );
        }
    };
    // Arenas created from now on, then every arena slot there is (created lazily, one per
    // thread group; at this point only the main thread's).
    set("arenas.dirty_decay_ms", -1);
    set("arenas.muzzy_decay_ms", -1);
    let mut narenas: u32 = 0;
    let mut len = std::mem::size_of::<u32>();
    // SAFETY: reads `arenas.narenas` (an `unsigned`) into a `u32` of the given size.
    let read = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arenas.narenas".as_ptr(),
            (&raw mut narenas).cast(),
            &raw mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if read != 0 {
        return;
    }
    for i in 0..narenas {
        set(&format!("arena.{i}.dirty_decay_ms"), -1);
        set(&format!("arena.{i}.muzzy_decay_ms"), -1);
    }
}

#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
fn keep_freed_pages() {}

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
        keep_freed_pages();
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
