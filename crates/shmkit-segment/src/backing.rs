//! The memory behind a segment, one of three implementations of `shmkit-os`: a POSIX region in
//! `/dev/shm`, a System V segment with its semaphore, or a sealed memfd. Creating, opening,
//! handing over to a peer's user, and removing.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use shmkit_name::{Name, PageSize};
use shmkit_os::sysv::{SysvKey, SysvSegment};
use shmkit_os::{Access, MapOptions, Mapping, Memfd, Region, RegionOptions, Seals};
use shmkit_sync::SemLock;

use crate::error::{Error, Result};
use crate::lock::KernelLock;
use crate::peer::PeerCredentials;

/// The prefix of every segment's name: how `stale` recognises shmkit segments in `/dev/shm`
/// (with the header's magic; a file with the prefix but not the magic is never touched).
pub const NAME_PREFIX: &str = "shmkit-seg-";

/// The mode of a new segment: the owner only (the creator, or the peer it was handed to; the
/// creator keeps access as root or, for System V, as the segment's creator).
const MODE: u32 = 0o600;

/// How a segment is made.
///
/// ```
/// use shmkit_segment::Implementation;
///
/// assert_eq!(Implementation::default(), Implementation::Auto);
/// assert_eq!(Implementation::SysV.to_string(), "SysV");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Implementation {
    /// POSIX where it can be used ([`Implementation::Posix`]), else System V: POSIX needs
    /// `/dev/shm`, and a peer of another user needs the creator to be root (to `fchown`).
    #[default]
    Auto,
    /// A POSIX shared memory object in `/dev/shm` (`shm_open`), locked with `flock`.
    Posix,
    /// A System V segment (`shmget`) locked with a System V semaphore (`SEM_UNDO`); both are
    /// visible to `ipcs`.
    SysV,
    /// A memfd sealed against resizing, passed to the peer as a file descriptor (`SCM_RIGHTS`),
    /// locked with `flock`. Gone when the last descriptor and mapping are: never stale.
    Memfd,
}

impl Implementation {
    /// The code in the header and descriptor (never 0, never `Auto`).
    pub(crate) const fn code(self) -> u32 {
        match self {
            Self::Auto | Self::Posix => 1,
            Self::SysV => 2,
            Self::Memfd => 3,
        }
    }

    /// The implementation of a code, if it is one.
    pub(crate) const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Posix),
            2 => Some(Self::SysV),
            3 => Some(Self::Memfd),
            _ => None,
        }
    }

    /// `Auto` resolved for a segment handed to `peer`.
    pub(crate) fn resolve(self, peer: Option<&PeerCredentials>) -> Self {
        if self != Self::Auto {
            return self;
        }
        let posix_available = Path::new(shmkit_os::mounts::POSIX_SHM_DIR).is_dir();
        let can_give_file = peer.is_none_or(|peer| {
            peer.uid == rustix::process::geteuid().as_raw() || rustix::process::geteuid().is_root()
        });
        if posix_available && can_give_file { Self::Posix } else { Self::SysV }
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "Auto",
            Self::Posix => "POSIX",
            Self::SysV => "SysV",
            Self::Memfd => "memfd",
        })
    }
}

/// A fresh segment name: `shmkit-seg-PID-N-RANDOM` (hexadecimal), unique per process and call,
/// and unpredictable, so no one can plant a file under it in advance.
pub(crate) fn unique_name() -> Result<Name> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut random = [0; 4];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
        .map_err(Error::os("getrandom", "a segment name"))?;
    let name = format!(
        "{NAME_PREFIX}{:x}-{:x}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u32::from_ne_bytes(random)
    );
    Name::new(&name).map_err(|error| Error::invalid("segment name", format!("{name}: {error}")))
}

/// The memory behind a segment, and what its lock uses.
#[derive(Debug)]
pub(crate) enum Backing {
    /// `/dev/shm/NAME`; the descriptor is this process's own open file description (the
    /// `flock` lock belongs to it).
    Posix { name: Name, region: Region },
    /// A System V segment with key `SysvKey::of(name)`, and the semaphore set with the same key.
    SysV { name: Name, segment: SysvSegment, semaphore: SemLock },
    /// A memfd; the descriptor is this process's own open file description (a received memfd is
    /// reopened through `/proc/self/fd`, so that `flock` tells the two processes apart).
    Memfd { name: Name, memfd: Memfd },
}

impl Backing {
    /// Creates the memory of a new segment of `size` bytes under `name`; `Ok(None)` if the name
    /// (or, for System V, its key) is taken, for the caller to pick another name.
    pub(crate) fn create(
        implementation: Implementation,
        name: Name,
        size: u64,
    ) -> Result<Option<(Self, Mapping)>> {
        let page = PageSize::Normal;
        let len = usize::try_from(size)
            .map_err(|_| Error::invalid("size", format!("{size} bytes do not fit in memory")))?;
        match implementation {
            Implementation::Auto | Implementation::Posix => {
                let label = posix_label(&name);
                let pages = size / page.bytes() as u64;
                match RegionOptions::new().page_size(page).mode(MODE).create(&name, pages) {
                    Ok(_) => {}
                    Err(shmkit_os::Error::AlreadyExists { .. }) => return Ok(None),
                    Err(error) => return Err(Error::memory("create", &label, error)),
                }
                // From here on a failure must unlink what was just created.
                let region =
                    Region::open(&name, Some(page), Access::ReadWrite).map_err(|error| {
                        let _ = shmkit_os::unlink(&name, page);
                        Error::memory("open", &label, error)
                    })?;
                let mapping = region.map(&MapOptions::new()).map_err(|error| {
                    let _ = shmkit_os::unlink(&name, page);
                    Error::memory("map", &label, error)
                })?;
                Ok(Some((Self::Posix { name, region }, mapping)))
            }
            Implementation::SysV => {
                let key = SysvKey::of(&name);
                let label = sysv_label(&name, None);
                let segment = match SysvSegment::create(key, len, page, MODE) {
                    Ok(segment) => segment,
                    Err(shmkit_os::Error::AlreadyExists { .. }) => return Ok(None),
                    Err(error) => return Err(Error::memory("create", &label, error)),
                };
                let label = sysv_label(&name, Some(segment.id()));
                let semaphore = match SemLock::create(key.get(), MODE) {
                    Ok(semaphore) => semaphore,
                    Err(error) => {
                        let id = segment.id();
                        let _ = segment.remove();
                        return match error {
                            shmkit_sync::Error::Os { ref source, .. }
                                if source.raw_os_error() == Some(libc::EEXIST) =>
                            {
                                Ok(None)
                            }
                            source => {
                                Err(Error::Lock { target: sysv_label(&name, Some(id)), source })
                            }
                        };
                    }
                };
                let mapping = match segment.attach(&MapOptions::new()) {
                    Ok(mapping) => mapping,
                    Err(error) => {
                        let _ = shmkit_os::sysv::remove_id(segment.id());
                        return Err(Error::memory("attach", &label, error));
                    }
                };
                Ok(Some((Self::SysV { name, segment, semaphore }, mapping)))
            }
            Implementation::Memfd => {
                let label = memfd_label(&name);
                let memfd = Memfd::create(name.as_str(), len, page, true)
                    .map_err(|error| Error::memory("create", &label, error))?;
                // Sealed before anyone else can have it: its size can never change, so no
                // process mapping it can be made to fault by a resize.
                memfd
                    .seal(Seals::SHRINK | Seals::GROW | Seals::SEAL)
                    .map_err(|error| Error::memory("seal", &label, error))?;
                let mapping = memfd
                    .map(&MapOptions::new())
                    .map_err(|error| Error::memory("map", &label, error))?;
                Ok(Some((Self::Memfd { name, memfd }, mapping)))
            }
        }
    }

    /// Hands the segment to `peer`'s user, before the header is published: owner and group
    /// become the peer's, the mode stays 0600. Nothing to do for a peer of this process's user,
    /// or for a memfd (whoever holds the descriptor may use it).
    pub(crate) fn give_to(&self, peer: &PeerCredentials, label: &str) -> Result<()> {
        if peer.uid == rustix::process::geteuid().as_raw() {
            return Ok(());
        }
        let ownership = |reason, source| Error::PeerOwnership {
            target: label.to_owned(),
            peer_uid: peer.uid,
            reason,
            source,
        };
        match self {
            Self::Posix { region, .. } => rustix::fs::fchown(
                region.fd(),
                Some(rustix::process::Uid::from_raw_unchecked(peer.uid)),
                Some(rustix::process::Gid::from_raw_unchecked(peer.gid)),
            )
            .map_err(|errno| ownership("fchown was refused", errno.into())),
            Self::SysV { segment, semaphore, .. } => {
                segment.set_owner(peer.uid, peer.gid, MODE).map_err(|error| {
                    ownership("shmctl(IPC_SET) was refused", os_error_of(error))
                })?;
                semaphore
                    .set_owner(peer.uid, peer.gid, MODE)
                    .map_err(|error| ownership("semctl(IPC_SET) was refused", os_error_of(error)))
            }
            Self::Memfd { .. } => Ok(()),
        }
    }

    /// Opens the POSIX segment `name`: the open file and the size `fstat` reports.
    pub(crate) fn open_posix(name: Name) -> Result<(Self, u64)> {
        let label = posix_label(&name);
        let region = Region::open(&name, Some(PageSize::Normal), Access::ReadWrite)
            .map_err(|error| Error::memory("open", &label, error))?;
        let size = region.info().size;
        Ok((Self::Posix { name, region }, size))
    }

    /// Opens the System V segment `id`, which must still have the key of `name` (ids are reused
    /// once a segment is removed), and its semaphore: the size `IPC_STAT` reports.
    pub(crate) fn open_sysv(name: Name, id: i32, timeout: Duration) -> Result<(Self, u64)> {
        let label = sysv_label(&name, Some(id));
        let segment = SysvSegment::open_id(id, PageSize::Normal)
            .map_err(|error| Error::memory("open", &label, error))?;
        let info = segment.stat().map_err(|error| Error::memory("IPC_STAT", &label, error))?;
        let key = SysvKey::of(&name);
        if info.key != Some(key) {
            // Removed (its key is then IPC_PRIVATE) or replaced by another segment with this id.
            return Err(Error::NotFound { target: label });
        }
        let semaphore =
            SemLock::open(key.get(), timeout).map_err(|source| lock_error(&label, source))?;
        Ok((Self::SysV { name, segment, semaphore }, info.size))
    }

    /// Takes a received memfd: it must be sealed against shrinking and growing, and is reopened
    /// through `/proc/self/fd` so that this process has its own open file description.
    pub(crate) fn open_memfd(name: Name, fd: OwnedFd) -> Result<(Self, u64)> {
        let label = memfd_label(&name);
        let received = Memfd::from_fd(fd, PageSize::Normal)
            .map_err(|error| Error::memory("open", &label, error))?;
        let seals =
            received.seals().map_err(|error| Error::memory("F_GET_SEALS", &label, error))?;
        for (seal, missing) in [(Seals::SHRINK, "shrinking"), (Seals::GROW, "growing")] {
            if !seals.contains(seal) {
                return Err(Error::Unsealed { target: label, seals, missing });
            }
        }
        let path = format!("/proc/self/fd/{}", received.fd().as_raw_fd());
        let own = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(Error::os("open (reopen of a received memfd)", &label))?;
        let memfd = Memfd::from_fd(own, PageSize::Normal)
            .map_err(|error| Error::memory("open", &label, error))?;
        let size = memfd.size().map_err(|error| Error::memory("fstat", &label, error))? as u64;
        Ok((Self::Memfd { name, memfd }, size))
    }

    /// Maps an opened segment read-write.
    pub(crate) fn map(&self, label: &str) -> Result<Mapping> {
        let options = MapOptions::new();
        match self {
            Self::Posix { region, .. } => region.map(&options),
            Self::SysV { segment, .. } => segment.attach(&options),
            Self::Memfd { memfd, .. } => memfd.map(&options),
        }
        .map_err(|error| Error::memory("map", label, error))
    }

    /// The implementation.
    pub(crate) fn implementation(&self) -> Implementation {
        match self {
            Self::Posix { .. } => Implementation::Posix,
            Self::SysV { .. } => Implementation::SysV,
            Self::Memfd { .. } => Implementation::Memfd,
        }
    }

    /// The segment's name.
    pub(crate) fn name(&self) -> Name {
        match self {
            Self::Posix { name, .. } | Self::SysV { name, .. } | Self::Memfd { name, .. } => *name,
        }
    }

    /// What the lock takes in the kernel: `flock` on this process's own descriptor, or the
    /// System V semaphore.
    pub(crate) fn kernel_lock(&self) -> KernelLock<'_> {
        match self {
            Self::Posix { region, .. } => KernelLock::File(region.fd()),
            Self::Memfd { memfd, .. } => KernelLock::File(memfd.as_fd()),
            Self::SysV { semaphore, .. } => KernelLock::Semaphore(semaphore),
        }
    }

    /// The System V semaphore's id, for System V segments.
    pub(crate) fn semaphore_id(&self) -> Option<i32> {
        match self {
            Self::SysV { semaphore, .. } => Some(semaphore.id()),
            _ => None,
        }
    }

    /// The System V segment's id, for System V segments.
    pub(crate) fn sysv_id(&self) -> Option<i32> {
        match self {
            Self::SysV { segment, .. } => Some(segment.id()),
            _ => None,
        }
    }

    /// The memfd's descriptor, for memfd segments (what is passed to the peer).
    pub(crate) fn memfd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Self::Memfd { memfd, .. } => Some(memfd.fd()),
            _ => None,
        }
    }

    /// How errors name the segment.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Posix { name, .. } => posix_label(name),
            Self::SysV { name, segment, .. } => sysv_label(name, Some(segment.id())),
            Self::Memfd { name, .. } => memfd_label(name),
        }
    }

    /// The creator's side of the last drop: removes the name (POSIX) or the segment (System V;
    /// its semaphore goes when the creator's `SemLock` drops, which removes it). Mappings elsewhere stay valid until
    /// unmapped. A segment already removed is fine.
    pub(crate) fn remove(&mut self) {
        match self {
            Self::Posix { name, .. } => {
                let _ = shmkit_os::unlink(name, PageSize::Normal);
            }
            Self::SysV { segment, .. } => {
                let _ = shmkit_os::sysv::remove_id(segment.id());
            }
            Self::Memfd { .. } => {}
        }
    }
}

/// `POSIX segment /dev/shm/NAME`.
pub(crate) fn posix_label(name: &Name) -> String {
    format!("POSIX segment {}/{name}", shmkit_os::mounts::POSIX_SHM_DIR)
}

/// `SysV segment NAME (shmid ID, key 0x...)`.
pub(crate) fn sysv_label(name: &Name, id: Option<i32>) -> String {
    let key = SysvKey::of(name).get().cast_unsigned();
    match id {
        Some(id) => format!("SysV segment {name} (shmid {id}, key 0x{key:08x})"),
        None => format!("SysV segment {name} (key 0x{key:08x})"),
    }
}

/// `memfd segment NAME`.
pub(crate) fn memfd_label(name: &Name) -> String {
    format!("memfd segment {name}")
}

/// An error of the System V semaphore, said as [`Error::NotFound`] (removed) or
/// [`Error::PermissionDenied`] where it is one of those.
pub(crate) fn lock_error(label: &str, source: shmkit_sync::Error) -> Error {
    let raw = match &source {
        shmkit_sync::Error::Os { source, .. } => source.raw_os_error(),
        _ => None,
    };
    match raw {
        Some(libc::ENOENT | libc::EIDRM | libc::EINVAL) => {
            Error::NotFound { target: label.to_owned() }
        }
        Some(raw @ (libc::EACCES | libc::EPERM)) => Error::PermissionDenied {
            target: label.to_owned(),
            uid: rustix::process::geteuid().as_raw(),
            source: std::io::Error::from_raw_os_error(raw),
        },
        _ => Error::Lock { target: label.to_owned(), source },
    }
}

/// The OS error behind a lower layer's error (its `Os` variant's errno), or the error itself when
/// there is none: the source of [`Error::PeerOwnership`].
fn os_error_of(error: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    let raw = std::iter::successors(error.source(), |source| source.source())
        .find_map(|source| source.downcast_ref::<std::io::Error>()?.raw_os_error());
    raw.map_or_else(|| std::io::Error::other(error), std::io::Error::from_raw_os_error)
}
