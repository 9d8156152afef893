//! The one error type of `shmkit-sync`.

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a lock, event or semaphore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The call, as in C (`semop`, `pthread_mutex_init`).
        call: &'static str,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// The bytes given to `open` do not hold what was expected there (wrong magic, layout
    /// version or size, or a state no correct peer writes).
    #[error("corrupted shared {what}: {detail}")]
    Corrupted {
        /// The object (`robust mutex`, `rwlock`, `event`).
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The byte range is too small or misaligned for the object.
    #[error("cannot place a {what} there: {detail}")]
    Placement {
        /// The object.
        what: &'static str,
        /// What was wrong (needed size or alignment).
        detail: String,
    },
    /// The object was not published by its creator within the time given to `open`.
    #[error("the shared {what} was not initialised within {waited:?}")]
    NotPublished {
        /// The object.
        what: &'static str,
        /// How long `open` waited.
        waited: std::time::Duration,
    },
    /// The timeout passed before the lock was taken.
    #[error("timed out after {0:?}")]
    TimedOut(std::time::Duration),
    /// An owner died holding the lock and the next owner released it without marking the
    /// protected data consistent (POSIX `ENOTRECOVERABLE`): nobody can take it again.
    #[error(
        "the {what} is not recoverable: an owner died holding it and the data was never marked \
         consistent; once every process has let go of it, re-initialise it (`init_at`)"
    )]
    NotRecoverable {
        /// The lock (`robust mutex`, `rwlock`).
        what: &'static str,
    },
    /// The calling thread already holds the lock (`EDEADLK`).
    #[error("this thread already holds the {what}: locking it again would deadlock")]
    Deadlock {
        /// The lock.
        what: &'static str,
    },
    /// A writer died while writing, so the data the lock protects may be half-written; readers
    /// get this until a writer repairs it.
    #[error(
        "the {what}'s writer (pid {pid}) died while writing and the data may be half-written: \
         take the write lock (its guard reports `owner_died`), repair, then `mark_consistent`"
    )]
    OwnerDied {
        /// The lock.
        what: &'static str,
        /// The process that died.
        pid: u32,
    },
}
