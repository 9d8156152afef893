//! The one error type of `shmkit-join`.

use shmkit_name::Name;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a hook returns when it refuses a join: any error, kept as the source.
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a join, leave or query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or mapping the region failed.
    #[error(transparent)]
    Os(#[from] shmkit_os::Error),
    /// 255 regions are joined already.
    #[error(
        "cannot join {name}: the join registry is full ({capacity} joins); leave a region first"
    )]
    Full {
        /// The region asked for.
        name: Name,
        /// How many joins the registry holds.
        capacity: usize,
    },
    /// A hook joined (or left) a region whose own join or leave is in progress on this thread.
    #[error(
        "cannot join {name}: its join or leave is in progress on this thread (a hook joined a region \
         that is being joined: a cycle)"
    )]
    Cycle {
        /// The region.
        name: Name,
    },
    /// A read-write join of a region this process has joined read-only.
    #[error(
        "cannot join {name} read-write: it is joined read-only here; leave every join of it first"
    )]
    AccessUpgrade {
        /// The region.
        name: Name,
    },
    /// The join hook refused the region; the join was undone.
    #[error("the join hook refused {name}; the join was undone")]
    HookRefused {
        /// The region.
        name: Name,
        /// Why the hook refused.
        #[source]
        source: HookError,
    },
    /// Nothing joined matches.
    #[error("{what} is not joined")]
    NotJoined {
        /// What was looked for.
        what: String,
    },
    /// A join collides with another join's name, handle or addresses (an anonymous join, or a
    /// join hook that returned another join's handle).
    #[error("cannot join {name}: {reason}")]
    Collision {
        /// The region asked for.
        name: Name,
        /// What is already joined.
        reason: String,
    },
    /// An address range that is empty where bytes are needed, or runs past the end of the
    /// address space.
    #[error(
        "invalid range of {len} bytes at {start:#x}: empty, or past the end of the address space"
    )]
    InvalidRange {
        /// Its first byte.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// An anonymous leave of a region joined more than once, or a named leave of an anonymous join
    /// and the other way round.
    #[error("cannot leave {name} that way: {reason}")]
    WrongLeave {
        /// The region.
        name: Name,
        /// What is in the way.
        reason: &'static str,
    },
}
