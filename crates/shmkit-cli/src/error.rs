//! The command's one error type: a usage error (exit 2: the arguments are wrong, nothing was done)
//! or a runtime error (exit 1: the arguments were fine, the machine said no). Either is printed as
//! one line naming the bad value and what to do; never a backtrace.

use std::fmt;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The arguments are wrong: exit code 2.
    Usage(String),
    /// The command could not do what was asked: exit code 1.
    Runtime(String),
}

/// `Result` with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Runtime(_) => 1,
        }
    }

    /// A usage error.
    pub fn usage(message: impl fmt::Display) -> Self {
        Self::Usage(message.to_string())
    }

    /// A runtime error.
    pub fn runtime(message: impl fmt::Display) -> Self {
        Self::Runtime(message.to_string())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) | Self::Runtime(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CliError {}

/// An argument `shmkit-os` refused before doing anything (a bad mode, an unknown NUMA node or
/// CPU, a name found with two page sizes) is a usage error; everything else happened on the way.
impl From<shmkit_os::Error> for CliError {
    fn from(error: shmkit_os::Error) -> Self {
        match error {
            shmkit_os::Error::InvalidInput { .. }
            | shmkit_os::Error::UnknownNode { .. }
            | shmkit_os::Error::UnknownCpu { .. } => Self::Usage(error.to_string()),
            _ => Self::Runtime(error.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        Self::Runtime(error.to_string())
    }
}
