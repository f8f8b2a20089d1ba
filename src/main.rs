//! The `authrelay` binary: parse the command line, start logging, run the
//! command, and turn any error into one line on stderr with a non-zero exit.
#![forbid(unsafe_code)]

use clap::Parser as _;

use authrelay::cli::{Cli, execute};
use authrelay::config::{LogConfig, ProcessEnv};

/// mimalloc instead of glibc's malloc: a worker allocates and frees many small
/// buffers per job across threads, where glibc's malloc spent about a tenth of
/// the worker's CPU. Version 2 (the `v2` feature): v3 held more memory for the
/// same CPU. Measured in README → Performance.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every thread's stack, reserved (not committed) up front; see `ensure_deep_stacks`.
const THREAD_STACK_BYTES: &str = "268435456";

fn main() {
    ensure_deep_stacks();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    };
    drop(runtime);
    std::process::exit(code);
}

/// The AMQP parser recurses once per level of a message's header table, on
/// lapin's I/O thread. A hostile message can nest as deep as a frame allows
/// (the URL's `frame_max` is pinned to 128 KiB, about 18,000 levels), which
/// overflows a default 2 MiB thread stack and aborts the process. std sizes
/// new threads from `RUST_MIN_STACK`, read when the first thread starts, so the
/// binary re-executes itself once with it set, before any thread exists.
/// Stacks are reserved address space; only the pages used are committed.
fn ensure_deep_stacks() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("RUST_MIN_STACK").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("RUST_MIN_STACK", THREAD_STACK_BYTES)
        .exec();
    // exec returns only when it failed: carry on with default stacks.
    eprintln!("warning: could not re-execute with larger thread stacks: {error}");
}

/// The error and its causes on one line, each said once (many of our errors
/// already name their cause in their own message).
fn one_line(e: &anyhow::Error) -> String {
    authrelay::error_text::chain(e.as_ref())
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let env = ProcessEnv::load()?;
    authrelay::telemetry::init(&LogConfig::from_env(&env)?);
    execute(cli.command, &env).await
}
