//! The one error type of `shmkit-segment`: each variant says what failed, on which segment, and
//! what to do; OS errors and the lower layers' errors are kept as the source.

use std::io;
use std::time::Duration;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong creating, opening, passing or using a segment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call made by this crate failed.
    #[error("{op} on {target} failed: {source}")]
    Os {
        /// The call, as in C (`flock`, `sendmsg`, `fchown`, `shmctl(IPC_SET)`).
        op: &'static str,
        /// The segment, socket or path.
        target: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The memory layer (`shmkit-os`) failed to create, open, map or remove the segment.
    #[error("{op} of {target} failed: {source}")]
    Memory {
        /// What was being done (`create`, `open`, `map`, `remove`).
        op: &'static str,
        /// The segment.
        target: String,
        /// The error of `shmkit-os`, which says what to do.
        #[source]
        source: shmkit_os::Error,
    },
    /// The segment's System V semaphore failed.
    #[error("the lock of {target} failed: {source}")]
    Lock {
        /// The segment.
        target: String,
        /// The error of `shmkit-sync`.
        #[source]
        source: shmkit_sync::Error,
    },
    /// The segment's byte ring refused an operation (a corrupted ring, a role held by another
    /// process, a record too long, a timeout).
    #[error("the ring of {target}: {source}")]
    Ring {
        /// The segment.
        target: String,
        /// The error of `shmkit-ring`.
        #[source]
        source: shmkit_ring::Error,
    },
    /// An argument was out of range; nothing was done.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// The argument.
        what: &'static str,
        /// Why, and what is accepted.
        reason: String,
    },
    /// The segment does not exist (any more): its creator removed it, or it never existed.
    #[error("{target} does not exist: its creator removed it (or died and it was cleaned up)")]
    NotFound {
        /// The segment.
        target: String,
    },
    /// The OS refused access: the segment was made for another peer.
    #[error(
        "{target} may not be opened by this process (uid {uid}): it was made for another peer; \
         the creator must pass this process's credentials when creating it"
    )]
    PermissionDenied {
        /// The segment.
        target: String,
        /// This process's effective uid.
        uid: u32,
        /// The OS error (`EACCES`, `EPERM`).
        #[source]
        source: io::Error,
    },
    /// The creator cannot give the segment to the peer's user.
    #[error(
        "cannot give {target} to uid {peer_uid}: {reason}; create it as root (CAP_CHOWN), or \
         use Implementation::SysV, which any creator can hand to another user"
    )]
    PeerOwnership {
        /// The segment.
        target: String,
        /// The peer's uid.
        peer_uid: u32,
        /// Why.
        reason: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The creator did not publish the header in time (it is still creating it, or it died).
    #[error(
        "{target} was not published within {waited:?}: its creator is slow or died while \
         creating it (`shmkit gc` removes the segments of dead creators)"
    )]
    NotPublished {
        /// The segment.
        target: String,
        /// How long the opener waited.
        waited: Duration,
    },
    /// The segment does not start with the shmkit segment magic: it is not a shmkit segment.
    #[error(
        "{target} is not a shmkit segment: its magic is {found:#018x}, expected {expected:#018x}"
    )]
    BadMagic {
        /// The segment.
        target: String,
        /// The magic found.
        found: u64,
        /// The magic of a segment.
        expected: u64,
    },
    /// The segment was made by a build with another header layout.
    #[error(
        "{target} has layout version {found}, this build reads version {expected}: build both \
         processes from the same shmkit version"
    )]
    LayoutVersion {
        /// The segment.
        target: String,
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// Shared memory holds a value no correct peer writes (a size, offset or position out of
    /// range, a changed header field). The access was refused; nothing outside the segment was
    /// touched.
    #[error("{target} is corrupted: {field} is {value:#x}, expected {expected}")]
    Corrupted {
        /// The segment.
        target: String,
        /// The field (`total size`, `data end`, `bump pointer`, ...).
        field: &'static str,
        /// Its value.
        value: u64,
        /// What it should be.
        expected: String,
    },
    /// The size the OS reports is not the size the caller asked for.
    #[error(
        "{target} holds {os} bytes, but {asked} bytes were asked for ({rounded} in whole pages): \
         the descriptor is for another segment"
    )]
    SizeMismatch {
        /// The segment.
        target: String,
        /// The size asked for.
        asked: u64,
        /// `asked` rounded up to whole pages.
        rounded: u64,
        /// The size the OS reports (`fstat`, `IPC_STAT`).
        os: u64,
    },
    /// The common data area has no room for the allocation.
    #[error(
        "the common data area of {target} is exhausted: {asked} bytes aligned to {align} asked, \
         {free} bytes free; create a larger segment"
    )]
    DataExhausted {
        /// The segment.
        target: String,
        /// Bytes asked for.
        asked: u64,
        /// Alignment asked for.
        align: u64,
        /// Bytes left (before alignment).
        free: u64,
    },
    /// An offset and length are not inside the common data area.
    #[error(
        "bytes {offset:#x}..+{len} are outside the common data area {begin:#x}..{end:#x} of {target}"
    )]
    OutOfBounds {
        /// The segment.
        target: String,
        /// The offset asked for.
        offset: u64,
        /// The length asked for.
        len: u64,
        /// The area's first offset.
        begin: u64,
        /// The area's end.
        end: u64,
    },
    /// `try_lock` found the lock held (by the peer, or another thread).
    #[error("the lock of {target} is held: try again later, or wait with `lock`")]
    WouldBlock {
        /// The segment.
        target: String,
    },
    /// The calling thread already holds the lock.
    #[error("this thread already holds the lock of {target}: locking it again would deadlock")]
    Deadlock {
        /// The segment.
        target: String,
    },
    /// A memfd segment was received without the seals that keep its size fixed.
    #[error(
        "{target} is not sealed against {missing} (seals: {seals}): its creator could change its \
         size under this process's mapping; refuse it"
    )]
    Unsealed {
        /// The segment.
        target: String,
        /// The seals it has.
        seals: shmkit_os::Seals,
        /// The seals it lacks.
        missing: &'static str,
    },
    /// The bytes given to `decode` are not a segment descriptor.
    #[error("bad segment descriptor: {reason}")]
    BadDescriptor {
        /// What is wrong.
        reason: String,
    },
    /// The peer closed the socket before the whole descriptor arrived.
    #[error("the peer closed {target} after {received} of {expected} descriptor bytes")]
    Disconnected {
        /// The socket.
        target: String,
        /// Bytes received.
        received: usize,
        /// Bytes a descriptor has.
        expected: usize,
    },
}

impl Error {
    /// A closure turning a failed call's errno into [`Error::Os`], for `map_err`.
    pub(crate) fn os(
        op: &'static str,
        target: impl std::fmt::Display,
    ) -> impl FnOnce(rustix::io::Errno) -> Self {
        move |errno| Self::Os { op, target: target.to_string(), source: errno.into() }
    }

    /// An error of `shmkit-os`, said as [`Error::NotFound`] or [`Error::PermissionDenied`] where
    /// it is one of those, else [`Error::Memory`].
    pub(crate) fn memory(op: &'static str, target: &str, source: shmkit_os::Error) -> Self {
        match source {
            shmkit_os::Error::NotFound { .. } => Self::NotFound { target: target.to_owned() },
            ref error if matches!(error.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                let raw = error.raw_os_error().unwrap_or(libc::EACCES);
                Self::PermissionDenied {
                    target: target.to_owned(),
                    uid: rustix::process::geteuid().as_raw(),
                    source: io::Error::from_raw_os_error(raw),
                }
            }
            source => Self::Memory { op, target: target.to_owned(), source },
        }
    }

    /// [`Error::InvalidInput`].
    pub(crate) fn invalid(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::InvalidInput { what, reason: reason.to_string() }
    }

    /// [`Error::Corrupted`].
    pub(crate) fn corrupted(
        target: &str,
        field: &'static str,
        value: u64,
        expected: impl std::fmt::Display,
    ) -> Self {
        Self::Corrupted { target: target.to_owned(), field, value, expected: expected.to_string() }
    }

    /// The OS error number behind this error, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Os { source, .. }
            | Self::PermissionDenied { source, .. }
            | Self::PeerOwnership { source, .. } => source.raw_os_error(),
            Self::Memory { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
