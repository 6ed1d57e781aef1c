//! tools owns the `strata` binary: `serve` runs the S3 server, `format`
//! prepares a device, `fsck`, `compact` and `inspect` work on a device no
//! server holds. It wires the crates together and owns no storage logic.

mod admin;
mod compact;
mod config;
mod connections;
mod fsck;
mod inspect;
mod progress;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: an S3-compatible object store on a raw block device"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the S3 server (creates and formats the default data file on first start).
    Serve(Box<config::ServeArgs>),
    /// Check a device that no server holds (read-only unless --repair). Exit 0 clean, 1 problems, 2 could not run.
    Fsck {
        device: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Quarantine damaged objects (reads of them fail with the reason) and rewrite the checkpoint.
        #[arg(long)]
        repair: bool,
        /// Encryption master keys (as `serve` takes them; also STRATA_KMS_KEYS and
        /// MINIO_KMS_SECRET_KEY): with them, SSE-S3 and SSE-KMS chunks' tags are verified.
        #[arg(long, env = "STRATA_KMS_KEY_FILE")]
        kms_key_file: Option<PathBuf>,
    },
    /// Compact a device that no server holds; safe to interrupt at any point.
    Compact {
        device: PathBuf,
        /// Stop at this space amplification (used segment bytes / live bytes).
        #[arg(long, default_value_t = 1.1)]
        target_space_amp: f64,
        #[arg(long)]
        json: bool,
    },
    /// Show what is on a device: superblock, segments, objects (no server may hold it).
    Inspect {
        device: PathBuf,
        /// Dump one object's metadata and records (BUCKET/KEY) as JSON.
        #[arg(long)]
        object: Option<String>,
    },
    /// Manage accounts, users, keys and policies of a running server.
    Admin(Box<admin::AdminArgs>),
    /// Write fresh superblocks to a device or file, erasing what it held.
    Format {
        device: PathBuf,
        #[arg(long, default_value_t = config::DEFAULT_SEGMENT_BYTES)]
        segment_size_bytes: u64,
        /// For a file that does not exist yet: its (sparse) size.
        #[arg(long)]
        size_bytes: Option<u64>,
    },
}

/// See Cargo.toml for why.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fsck {
            device,
            json,
            repair,
            kms_key_file,
        } => {
            return match config::keyring_from_env(kms_key_file.as_deref(), None) {
                Ok(keys) => fsck::run(&device, json, repair, &keys),
                Err(e) => {
                    eprintln!("strata fsck: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Compact {
            device,
            target_space_amp,
            json,
        } => compact::run(&device, target_space_amp, json),
        Command::Inspect { device, object } => inspect::run(&device, object.as_deref()),
        Command::Serve(args) => serve::run(*args),
        Command::Admin(args) => admin::run(*args),
        Command::Format {
            device,
            segment_size_bytes,
            size_bytes,
        } => format(&device, segment_size_bytes, size_bytes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("strata: {message}");
            ExitCode::from(2)
        }
    }
}

fn format(
    device: &std::path::Path,
    segment_size_bytes: u64,
    size_bytes: Option<u64>,
) -> Result<(), String> {
    let options = blockdev::OpenOptions {
        create_size_bytes: size_bytes,
        engine: None,
    };
    let dev = blockdev::open_device(device, &options).map_err(|e| e.to_string())?;
    let sb = lsm::format_device(dev.as_ref(), segment_size_bytes).map_err(|e| e.to_string())?;
    println!(
        "formatted {}: {} segments of {} bytes",
        device.display(),
        sb.segment_count,
        sb.segment_size_bytes
    );
    Ok(())
}
