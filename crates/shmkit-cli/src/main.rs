//! `shmkit`: see and clean up shared memory on a host (`ls`, `info`, `create`, `rm`, `gc`,
//! `numa`, `ring stat`), and measure shmkit's rings against a Unix socket (`bench`).
//!
//! This file parses the arguments, runs the command and turns its error into one line and an exit
//! code: 0 success, 1 runtime error, 2 usage error. The commands live in `cmd/`, one file each.
//!
//! Unsafe code is denied crate-wide; the modules that need it (`signal`: `sigaction`; the bench's
//! `layout`: rings placed in a mapping) opt in and say why in their docs.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(
    unreachable_pub,
    reason = "a binary: `pub` marks what a module offers the rest of the crate, which is all it can reach"
)]

mod args;
mod cmd;
mod error;
mod output;
mod process;
mod signal;
mod size;
mod target;
mod users;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, RingCommand};
use crate::error::CliError;

fn main() -> ExitCode {
    // clap exits by itself: 0 for --help and --version, 2 for a usage error, printing the usage.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Ls(args) => cmd::ls::run(&args),
        Command::Info(args) => cmd::info::run(&args),
        Command::Create(args) => cmd::create::run(&args),
        Command::Rm(args) => cmd::rm::run(&args),
        Command::Gc(args) => cmd::gc::run(&args),
        Command::Numa(args) => cmd::numa::run(&args),
        Command::Ring { command: RingCommand::Stat(args) } => cmd::ring_stat::run(&args),
        Command::BenchConsumer(args) => cmd::bench::consumer::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shmkit: error: {error}");
            if matches!(error, CliError::Usage(_)) {
                eprintln!("Run `shmkit --help` (or `shmkit COMMAND --help`) for the options.");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
