//! Running cargo and other programs as named steps, with the command line echoed first.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::process::Command;

/// Why a chore failed.
#[derive(Debug)]
pub(crate) enum Error {
    /// A step ran and exited unsuccessfully.
    StepFailed { step: String, status: String },
    /// A program could not be started at all.
    Spawn { program: String, source: std::io::Error },
    /// Anything else, already worded for the user.
    Message(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StepFailed { step, status } => write!(f, "step `{step}` failed ({status})"),
            Self::Spawn { program, source } => write!(f, "cannot run `{program}`: {source}"),
            Self::Message(message) => f.write_str(message),
        }
    }
}

/// A `cargo` command run from the workspace root, with the cargo that runs xtask.
pub(crate) fn cargo(root: &Path, args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root).args(args);
    command
}

/// Prints the step and its command line, runs it, and turns a failure into an error.
pub(crate) fn run_step(step: &str, command: &mut Command) -> Result<(), Error> {
    println!("\n==> {step}");
    println!("    $ {}", describe(command));
    let status = command.status().map_err(|source| Error::Spawn {
        program: command.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::StepFailed { step: step.to_owned(), status: status.to_string() })
    }
}

fn describe(command: &Command) -> String {
    let mut line = String::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            let _ = write!(line, "{}={:?} ", key.to_string_lossy(), value.to_string_lossy());
        }
    }
    line.push_str(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
