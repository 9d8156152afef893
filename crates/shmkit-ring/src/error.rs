//! The one error type of `shmkit-ring` (no allocation: every field is a number or a static
//! string, so the `no_std` core can report everything it checks).

use crate::header::Kind;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What went wrong when placing, opening or using a shared primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The byte range cannot hold the primitive: too small, or misaligned.
    #[error(
        "cannot place a {what} there: {reason} (needs {needed} bytes, {align}-aligned; got {len} bytes at {addr:#x})"
    )]
    Placement {
        /// The primitive (`SPSC ring`, `byte ring`, `broadcast ring`, `seqlock`).
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
        /// Bytes the primitive needs.
        needed: usize,
        /// Alignment it needs.
        align: usize,
        /// Bytes given.
        len: usize,
        /// Where they start.
        addr: usize,
    },
    /// A parameter is out of range (a capacity that is not a power of two, an element too big).
    #[error("invalid {what}: {reason} (got {value})")]
    InvalidInput {
        /// The parameter.
        what: &'static str,
        /// What it must be.
        reason: &'static str,
        /// The value given.
        value: u64,
    },
    /// The shared bytes hold something no correct peer writes: a wrong magic, layout version,
    /// kind, size, or a position or length out of range. Never undefined behaviour: the check
    /// that found it refused to go on.
    #[error("corrupted shared {what}: {field} is {value:#x}, expected {expected}")]
    Corrupted {
        /// The primitive.
        what: &'static str,
        /// The field that is wrong (`magic`, `version`, `tail`, `record length`).
        field: &'static str,
        /// Its value.
        value: u64,
        /// What it should have been.
        expected: &'static str,
    },
    /// The header is of a layout version of its kind that this build does not know: made by
    /// another version of this crate. Nothing past the header is read.
    #[error(
        "the shared {what} has layout version {version}, which this build does not know (it reads version {known}): use the build that made it"
    )]
    UnknownVersion {
        /// The primitive.
        what: &'static str,
        /// Its kind, as the header says.
        kind: Kind,
        /// The layout version the header says.
        version: u32,
        /// The layout version of that kind this build writes and reads.
        known: u32,
    },
    /// The creator has not published the primitive yet (or died before it did).
    #[error("the shared {what} is not published yet: wait for its creator, or re-create it")]
    NotPublished {
        /// The primitive.
        what: &'static str,
    },
    /// A role (producer, consumer) is held by another attachment.
    #[error(
        "the {role} of this {what} is held by owner {owner}: detach it first, or take it over if that process died"
    )]
    RoleTaken {
        /// The primitive.
        what: &'static str,
        /// `producer` or `consumer`.
        role: &'static str,
        /// The owner id recorded in shared memory (a process id).
        owner: u32,
    },
    /// A take-over named an owner that is not the one recorded (someone else took it, or it was
    /// released).
    #[error("cannot take over the {role} of this {what}: it is held by {owner}, not {expected}")]
    TakeOver {
        /// The primitive.
        what: &'static str,
        /// The role.
        role: &'static str,
        /// The owner recorded.
        owner: u32,
        /// The owner the caller expected to replace.
        expected: u32,
    },
    /// A blocking call's timeout passed (`std` feature).
    #[error("timed out waiting on the {what}")]
    TimedOut {
        /// The primitive.
        what: &'static str,
    },
}
