//! Who the peer is: credentials read from a connected Unix socket (`SO_PEERCRED`), which the
//! kernel records when the peer connects and no peer can forge.

use std::os::fd::AsFd;

use crate::error::{Error, Result};

/// A process's pid, user and group, as the kernel reports them for the other end of a Unix
/// socket. A segment created for a peer is owned by the peer's user and open only to it and the
/// creator.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use shmkit_segment::PeerCredentials;
///
/// let (ours, theirs) = UnixStream::pair()?;
/// let peer = PeerCredentials::of_socket(&ours)?;
/// assert_eq!(peer, PeerCredentials::current());
/// # drop(theirs);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id (when it connected).
    pub pid: u32,
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id.
    pub gid: u32,
}

impl PeerCredentials {
    /// `getsockopt(socket, SOL_SOCKET, SO_PEERCRED)`—The credentials of the process at the other
    /// end of a connected Unix socket, as they were when it connected (or when the pair was
    /// made).
    ///
    /// # References
    ///  - [Linux `unix(7)`, `SO_PEERCRED`](https://man7.org/linux/man-pages/man7/unix.7.html)
    #[doc(alias = "SO_PEERCRED")]
    pub fn of_socket(socket: impl AsFd) -> Result<Self> {
        let credentials = rustix::net::sockopt::socket_peercred(socket.as_fd())
            .map_err(Error::os("getsockopt(SO_PEERCRED)", "the peer's socket"))?;
        Ok(Self {
            pid: credentials.pid.as_raw_nonzero().get().unsigned_abs(),
            uid: credentials.uid.as_raw(),
            gid: credentials.gid.as_raw(),
        })
    }

    /// This process's pid and effective user and group.
    pub fn current() -> Self {
        Self {
            pid: std::process::id(),
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }
}
