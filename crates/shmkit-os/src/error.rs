//! The one error type of `shmkit-os`: every variant says what failed, on which name or path, and
//! what to do about it; the OS error is kept as the source.

use std::fmt::Display;
use std::io;

use shmkit_name::PageSize;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a region, mapping or NUMA operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; `op` names it, `target` names the region, path or address.
    #[error("{op} on {target} failed: {source}{hint}", hint = errno_hint(source))]
    Os {
        /// The failing call, as in its man page (`shm_open`, `mmap`, ...).
        op: &'static str,
        /// The region name, path or address range it was called on.
        target: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Creation found a region of that name already there.
    #[error("{target} already exists: remove it first or choose another name")]
    AlreadyExists {
        /// The region.
        target: String,
    },
    /// The region does not exist.
    #[error("{target} does not exist")]
    NotFound {
        /// The region.
        target: String,
    },
    /// No hugetlbfs is mounted with that page size where shmkit looks for it.
    #[error(
        "no hugetlbfs mount with {page_size} pages ({bytes} bytes) at {path}: run \
         `cargo xtask setup-hugepages` (or set SHMKIT_PATH to a folder holding .huge and .gigantic mounts)",
        bytes = page_size.bytes()
    )]
    NoHugetlbfsMount {
        /// The page size asked for.
        page_size: PageSize,
        /// Where the mount was expected.
        path: String,
    },
    /// The kernel could not supply the pages (no free huge pages on the node, tmpfs full, ...).
    #[error(
        "not enough memory for {pages} {page_size} pages of {target} ({op}: {source}): for huge or \
         gigantic pages reserve more with `cargo xtask setup-hugepages --huge N --gigantic N`"
    )]
    OutOfMemory {
        /// The region.
        target: String,
        /// The page size asked for.
        page_size: PageSize,
        /// How many pages were asked for.
        pages: u64,
        /// The call that ran out (`mmap`, `fallocate`, `mlock`, ...).
        op: &'static str,
        /// The OS error (`ENOMEM`, `ENOSPC`).
        #[source]
        source: io::Error,
    },
    /// `mlock`/`mlockall` failed because of the locked-memory limit.
    #[error(
        "cannot lock {bytes} bytes of {target} in memory: the locked-memory limit RLIMIT_MEMLOCK is \
         {limit}; raise it (`ulimit -l`, limits.conf, or CAP_IPC_LOCK) or map without locking"
    )]
    MemlockLimit {
        /// The region or `"this process"` for `mlockall`.
        target: String,
        /// How much was to be locked (0 for `mlockall`).
        bytes: u64,
        /// The soft limit, in words (`"65536 bytes"`, `"unlimited"`).
        limit: String,
        /// The OS error (`ENOMEM`, `EPERM`, `EAGAIN`).
        #[source]
        source: io::Error,
    },
    /// An argument was out of range or malformed; nothing was done.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which argument.
        what: &'static str,
        /// Why it is refused, and what is accepted.
        reason: String,
    },
    /// A NUMA node was named that this machine does not have.
    #[error("NUMA node {node} does not exist: this machine has node(s) {available}")]
    UnknownNode {
        /// The node asked for.
        node: u32,
        /// The nodes that exist, as a list (`"0"`, `"0-1"`).
        available: String,
    },
    /// A CPU was named that this machine does not have.
    #[error("CPU {cpu} does not exist: this machine has CPUs {available}")]
    UnknownCpu {
        /// The CPU asked for.
        cpu: u32,
        /// The CPUs that exist, as a list.
        available: String,
    },
    /// What the OS reports about a region contradicts what a shmkit region must be.
    #[error("{target} is corrupted: {reason}")]
    Corrupted {
        /// The region.
        target: String,
        /// What is inconsistent.
        reason: String,
    },
    /// NUMA verification found pages away from the node they were placed on.
    #[error("{misplaced} of {pages} pages of {target} are not on NUMA node {node}")]
    Misplaced {
        /// The region.
        target: String,
        /// The node the pages should be on.
        node: u32,
        /// How many are elsewhere (or not present).
        misplaced: u64,
        /// How many pages were checked.
        pages: u64,
    },
}

impl Error {
    /// A closure turning a failed call's errno into [`Error::Os`], for `map_err`.
    pub(crate) fn os(
        op: &'static str,
        target: impl Display,
    ) -> impl FnOnce(rustix::io::Errno) -> Self {
        move |errno| Self::Os { op, target: target.to_string(), source: errno.into() }
    }

    /// As [`Error::os`], but `ENOENT` is [`Error::NotFound`]: for opening what should exist.
    pub(crate) fn os_or_not_found(
        op: &'static str,
        target: impl Display,
    ) -> impl FnOnce(rustix::io::Errno) -> Self {
        move |errno| {
            if errno == rustix::io::Errno::NOENT {
                Self::NotFound { target: target.to_string() }
            } else {
                Self::os(op, target)(errno)
            }
        }
    }

    /// [`Error::Os`] from an `io::Error` (std file operations).
    pub(crate) fn io(op: &'static str, target: impl Display) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Os { op, target: target.to_string(), source }
    }

    /// [`Error::InvalidInput`].
    pub(crate) fn invalid(what: &'static str, reason: impl Display) -> Self {
        Self::InvalidInput { what, reason: reason.to_string() }
    }

    /// The OS error number behind this error, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Os { source, .. }
            | Self::OutOfMemory { source, .. }
            | Self::MemlockLimit { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// What to do about the common errnos, appended to [`Error::Os`] messages.
fn errno_hint(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => {
            " (check the owner and mode of the region, or run as its owner or root)"
        }
        Some(libc::ENOSPC) => " (the filesystem holding the region is full)",
        Some(libc::ENOMEM) => " (not enough memory, address space or huge pages)",
        Some(libc::EMFILE | libc::ENFILE) => " (too many open files: raise `ulimit -n`)",
        _ => "",
    }
}
