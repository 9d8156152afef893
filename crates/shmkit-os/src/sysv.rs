//! System V shared memory (`shmget`, `shmat`, `shmdt`, `shmctl`): segments named by a 32-bit key,
//! visible to `ipcs -m` and `/proc/sysvipc/shm`.
//!
//! rustix has no System V calls, so this module is the one place of the crate that calls them
//! through libc; every such call is in this file.
//!
//! What the kernel does that shapes this API (checked on Linux 6.18):
//! - `shmget` ignores the umask: the mode given at creation is the segment's mode, exactly.
//! - `IPC_RMID` only marks a segment: it disappears when its last attachment goes, but its key is
//!   released at once (the kernel rewrites it to `IPC_PRIVATE`), so a new segment may take the
//!   key while old attachments still live.
//! - A segment does not record its page size; whoever attaches a `SHM_HUGETLB` segment must know
//!   it, to place the attachment on a huge-page boundary.
//!
//! ```
//! use shmkit_name::{Name, PageSize};
//! use shmkit_os::MapOptions;
//! use shmkit_os::sysv::{SysvKey, SysvSegment};
//!
//! let name = Name::new(&format!("doc-sysv-mod-{}", std::process::id()))?;
//! let segment = SysvSegment::create(SysvKey::of(&name), 8192, PageSize::Normal, 0o600)?;
//! let mapping = segment.attach(&MapOptions::new())?;
//! mapping.write_at(0, b"hello")?;
//!
//! let again = SysvSegment::open(SysvKey::of(&name), PageSize::Normal)?;
//! assert_eq!(again.id(), segment.id());
//! assert_eq!(again.stat()?.attach_count, 1);
//! drop(mapping);
//! segment.remove()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::c_int;
use std::fmt;
use std::mem::MaybeUninit;
use std::time::{Duration, SystemTime};

use shmkit_name::{Name, PageSize};

use crate::error::{Error, Result};
use crate::map::{Access, Kind, MapOptions, Mapping, Reservation, check_len, out_of_memory_or_os};

/// `SHM_HUGE_SHIFT` of `<linux/shm.h>`: the page size's log2 goes in these bits of `shmflg`.
/// libc does not export the `SHM_HUGE_*` values.
const SHM_HUGE_SHIFT: u32 = 26;
/// `SHM_DEST` of `<linux/shm.h>`: in `shm_perm.mode` of a segment marked for removal.
const SHM_DEST: u32 = 0o1000;
/// `SHM_LOCKED` of `<linux/shm.h>`: in `shm_perm.mode` of a segment locked with `SHM_LOCK`.
const SHM_LOCKED: u32 = 0o2000;
/// The file listing every segment of this IPC namespace.
const PROC_SYSVIPC_SHM: &str = "/proc/sysvipc/shm";

/// A System V IPC key naming a segment; never `IPC_PRIVATE` (0), which names none.
///
/// Shown as `ipcs` shows keys: `SysV key 0x04f53e89`.
///
/// ```
/// use shmkit_name::Name;
/// use shmkit_os::sysv::SysvKey;
///
/// let key = SysvKey::of(&Name::new("orders.v1")?);
/// assert_eq!(key.get(), 0x04F5_3E89);
/// assert_eq!(key.to_string(), "SysV key 0x04f53e89");
/// assert!(SysvKey::new(0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "key_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysvKey(i32);

impl SysvKey {
    /// The key of a region name ([`Name::sysv_key`]), the same in every process.
    pub const fn of(name: &Name) -> Self {
        Self(name.sysv_key())
    }

    /// An explicit key, as from `ftok` or another program. `IPC_PRIVATE` (0) is refused: use
    /// [`SysvSegment::create_private`] for a segment without a key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for 0.
    pub fn new(key: i32) -> Result<Self> {
        if key == libc::IPC_PRIVATE {
            return Err(Error::invalid(
                "SysV key",
                "0 is IPC_PRIVATE, which names no segment: use SysvSegment::create_private",
            ));
        }
        Ok(Self(key))
    }

    /// The raw `key_t`.
    pub const fn get(self) -> i32 {
        self.0
    }
}

impl From<&Name> for SysvKey {
    fn from(name: &Name) -> Self {
        Self::of(name)
    }
}

impl fmt::Display for SysvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SysV key 0x{:08x}", self.0.cast_unsigned())
    }
}

/// What the kernel says of a segment (`IPC_STAT`, or a line of `/proc/sysvipc/shm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysvInfo {
    /// The segment id (`shmid`).
    pub id: i32,
    /// Its key; `None` for a private segment, or one marked for removal (the kernel then
    /// rewrites the key to `IPC_PRIVATE`).
    pub key: Option<SysvKey>,
    /// Its size in bytes, as given at creation (`shm_segsz`).
    pub size: u64,
    /// Its permission bits (`0o777` at most).
    pub mode: u32,
    /// `SHM_DEST`: removed, and gone once the last attachment is.
    pub marked_for_removal: bool,
    /// `SHM_LOCKED`: locked in memory with `shmctl(SHM_LOCK)`.
    pub locked: bool,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Its creator's user.
    pub cuid: u32,
    /// Its creator's group.
    pub cgid: u32,
    /// The pid of its creator (in the caller's pid namespace; 0 if outside it).
    pub creator_pid: u32,
    /// The pid of the last process to attach or detach it (0 if none yet).
    pub last_pid: u32,
    /// How many attachments it has, in every process.
    pub attach_count: u64,
    /// The last attach, if any.
    pub attach_time: Option<SystemTime>,
    /// The last detach, if any.
    pub detach_time: Option<SystemTime>,
    /// The last change (creation or `IPC_SET`).
    pub change_time: Option<SystemTime>,
}

impl SysvInfo {
    fn from_stat(id: i32, ds: &libc::shmid_ds) -> Self {
        let mode = u32::from(ds.shm_perm.mode);
        Self {
            id,
            key: SysvKey::new(ds.shm_perm.__key).ok(),
            size: ds.shm_segsz as u64,
            mode: mode & 0o777,
            marked_for_removal: mode & SHM_DEST != 0,
            locked: mode & SHM_LOCKED != 0,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            creator_pid: u32::try_from(ds.shm_cpid).unwrap_or(0),
            last_pid: u32::try_from(ds.shm_lpid).unwrap_or(0),
            attach_count: ds.shm_nattch,
            attach_time: time_of(ds.shm_atime),
            detach_time: time_of(ds.shm_dtime),
            change_time: time_of(ds.shm_ctime),
        }
    }
}

/// Seconds since the epoch as a time; 0 (never) and the impossible negative values are `None`.
fn time_of(seconds: i64) -> Option<SystemTime> {
    u64::try_from(seconds)
        .ok()
        .filter(|&seconds| seconds > 0)
        .and_then(|seconds| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds)))
}

/// A System V shared memory segment: its id and the page size it is attached with.
///
/// Not RAII: a segment outlives the processes that use it until [`SysvSegment::remove`] (or
/// `ipcrm`). Attachments ([`Mapping`]s) are detached on drop.
#[derive(Debug, PartialEq, Eq)]
pub struct SysvSegment {
    id: i32,
    key: Option<SysvKey>,
    page_size: PageSize,
}

impl SysvSegment {
    /// `shmget(key, size, IPC_CREAT | IPC_EXCL | mode [| SHM_HUGETLB | SHM_HUGE_2MB/1GB])`—
    /// Creates a new segment of `size` bytes on pages of `page_size`.
    ///
    /// An existing segment with that key is [`Error::AlreadyExists`], never reused. `size` must be
    /// a non-zero multiple of the page size; `mode` is at most `0o777` and is the segment's mode
    /// exactly (System V ignores the umask). Huge and gigantic pages are taken from the kernel's
    /// pool now: a shortage is [`Error::OutOfMemory`] here. The new segment is zero-filled.
    ///
    /// # References
    ///  - [Linux `shmget(2)`](https://man7.org/linux/man-pages/man2/shmget.2.html)
    ///
    /// ```
    /// use shmkit_name::{Name, PageSize};
    /// use shmkit_os::Error;
    /// use shmkit_os::sysv::{SysvKey, SysvSegment};
    ///
    /// let key = SysvKey::of(&Name::new(&format!("doc-sysv-create-{}", std::process::id()))?);
    /// let segment = SysvSegment::create(key, 4096, PageSize::Normal, 0o640)?;
    /// let info = segment.stat()?;
    /// assert_eq!((info.size, info.mode, info.key), (4096, 0o640, Some(key)));
    /// let again = SysvSegment::create(key, 4096, PageSize::Normal, 0o640);
    /// assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    /// segment.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if `key` is taken; [`Error::InvalidInput`] for a bad size or mode
    /// (or one beyond `kernel.shmmax`); [`Error::OutOfMemory`] when the pages are not there;
    /// [`Error::Os`] for anything else `shmget` refuses.
    #[doc(alias = "shmget")]
    pub fn create(key: SysvKey, size: usize, page_size: PageSize, mode: u32) -> Result<Self> {
        Self::create_with(Some(key), size, page_size, mode)
    }

    /// `shmget(IPC_PRIVATE, size, IPC_CREAT | mode ...)`—Creates a segment without a key, which
    /// only its id reaches: for handing to a child or a peer by id.
    ///
    /// Otherwise as [`SysvSegment::create`].
    ///
    /// # References
    ///  - [Linux `shmget(2)`](https://man7.org/linux/man-pages/man2/shmget.2.html)
    ///
    /// # Errors
    ///
    /// As [`SysvSegment::create`], except that there is no key to be taken.
    #[doc(alias = "IPC_PRIVATE")]
    pub fn create_private(size: usize, page_size: PageSize, mode: u32) -> Result<Self> {
        Self::create_with(None, size, page_size, mode)
    }

    fn create_with(
        key: Option<SysvKey>,
        size: usize,
        page_size: PageSize,
        mode: u32,
    ) -> Result<Self> {
        let label = key.map_or_else(|| "private SysV segment".to_owned(), |key| key.to_string());
        check_len(size, page_size, &label)?;
        if mode > 0o777 {
            return Err(Error::invalid(
                "mode",
                format!("{mode:o} has bits beyond 0o777, which SysV reads as flags"),
            ));
        }
        let flags =
            libc::IPC_CREAT | libc::IPC_EXCL | hugetlb_flags(page_size) | mode.cast_signed();
        // SAFETY: shmget takes plain integers and touches no memory of ours.
        let id = unsafe { libc::shmget(key.map_or(libc::IPC_PRIVATE, SysvKey::get), size, flags) };
        if id < 0 {
            let errno = last_errno();
            return Err(match errno {
                rustix::io::Errno::EXIST => Error::AlreadyExists { target: label },
                rustix::io::Errno::INVAL => too_large_or_os(size, &label, errno),
                // SHMMNI (segment count) or SHMALL (total pages) reached.
                rustix::io::Errno::NOSPC => {
                    Error::os("shmget (kernel.shmmni or kernel.shmall reached)", &label)(errno)
                }
                _ => out_of_memory_or_os(errno, "shmget", &label, size, page_size),
            });
        }
        Ok(Self { id, key, page_size })
    }

    /// `shmget(key, 0, 0)`—Opens the existing segment `key`, to be attached with pages of
    /// `page_size` (the size the segment was created with: the kernel does not record it).
    ///
    /// A missing segment is [`Error::NotFound`]; one whose size is not a multiple of
    /// `page_size` is [`Error::Corrupted`].
    ///
    /// # References
    ///  - [Linux `shmget(2)`](https://man7.org/linux/man-pages/man2/shmget.2.html)
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Corrupted`] as said; [`Error::Os`] when `shmget` or
    /// `IPC_STAT` refuse (`EACCES`: not permitted by the segment's mode).
    #[doc(alias = "shmget")]
    pub fn open(key: SysvKey, page_size: PageSize) -> Result<Self> {
        // SAFETY: shmget takes plain integers and touches no memory of ours.
        let id = unsafe { libc::shmget(key.get(), 0, 0) };
        if id < 0 {
            let errno = last_errno();
            return Err(if errno == rustix::io::Errno::NOENT {
                Error::NotFound { target: key.to_string() }
            } else {
                Error::os("shmget", key)(errno)
            });
        }
        let segment = Self { id, key: Some(key), page_size };
        segment.checked_size(&segment.stat()?)?;
        Ok(segment)
    }

    /// Opens the existing segment with id `id` (as from `ipcs -m`, or handed over by a peer),
    /// to be attached with pages of `page_size`. Checked as [`SysvSegment::open`] checks.
    ///
    /// # Errors
    ///
    /// As [`SysvSegment::open`].
    pub fn open_id(id: i32, page_size: PageSize) -> Result<Self> {
        let info = stat_id(id)?;
        let segment = Self { id, key: info.key, page_size };
        segment.checked_size(&info)?;
        Ok(segment)
    }

    /// The segment id (`shmid`).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key, `None` for a private segment.
    pub fn key(&self) -> Option<SysvKey> {
        self.key
    }

    /// The page size the segment is attached with.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// How errors name the segment: its key as `ipcs` shows it, and its id.
    fn label(&self) -> String {
        match self.key {
            Some(key) => format!("{key} (shmid {})", self.id),
            None => format!("SysV shmid {}", self.id),
        }
    }

    /// `shmctl(id, IPC_STAT)`—What the kernel says of the segment now.
    ///
    /// # References
    ///  - [Linux `shmctl(2)`](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    #[doc(alias = "shmctl")]
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] once the segment is gone; [`Error::Os`] if `IPC_STAT` is refused.
    #[doc(alias = "IPC_STAT")]
    pub fn stat(&self) -> Result<SysvInfo> {
        stat_id(self.id)
    }

    /// The size from `info`, usable as the length of an attachment with our page size.
    fn checked_size(&self, info: &SysvInfo) -> Result<usize> {
        let label = self.label();
        let size = usize::try_from(info.size).map_err(|_| Error::Corrupted {
            target: label.clone(),
            reason: format!("its size {} does not fit this address space", info.size),
        })?;
        if size == 0 || !size.is_multiple_of(self.page_size.bytes()) {
            return Err(Error::Corrupted {
                target: label,
                reason: format!(
                    "its size {size} is not a multiple of the {} page size ({}): open it with the page \
                     size it was created with",
                    self.page_size,
                    self.page_size.bytes()
                ),
            });
        }
        Ok(size)
    }

    /// `shmat(id, addr, SHM_REMAP [| SHM_RDONLY])`—Attaches the whole segment at a random
    /// address between guard pages, with `options` applied (lock, dump, transparent huge pages,
    /// populate). The length is the segment's size from `IPC_STAT`; the [`Mapping`] detaches
    /// (`shmdt`) on drop.
    ///
    /// # References
    ///  - [Linux `shmat(2)`](https://man7.org/linux/man-pages/man2/shmat.2.html)
    ///
    /// ```
    /// use shmkit_name::PageSize;
    /// use shmkit_os::{Access, MapOptions};
    /// use shmkit_os::sysv::SysvSegment;
    ///
    /// let segment = SysvSegment::create_private(4096, PageSize::Normal, 0o600)?;
    /// let writer = segment.attach(&MapOptions::new())?;
    /// let reader = segment.attach(&MapOptions::new().access(Access::ReadOnly))?;
    /// writer.write_at(10, b"sysv")?;
    /// let mut back = [0; 4];
    /// reader.read_at(10, &mut back)?;
    /// assert_eq!(&back, b"sysv");
    /// assert_eq!(segment.stat()?.attach_count, 2);
    /// segment.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] once the segment is gone; [`Error::Corrupted`] if its size does not
    /// fit the page size; [`Error::MemlockLimit`] if locking was asked and refused;
    /// [`Error::Os`] for what `shmat` refuses (`EACCES`: the mode does not allow this access).
    #[doc(alias = "shmat")]
    pub fn attach(&self, options: &MapOptions) -> Result<Mapping> {
        let label = self.label();
        let size = self.checked_size(&self.stat()?)?;
        let reservation = Reservation::random(size, self.page_size, true, &label)?;
        let access = options.get_access();
        // SHM_REMAP lets the attachment replace the middle of our reservation, as MAP_FIXED does.
        let mut flags = libc::SHM_REMAP;
        if access == Access::ReadOnly {
            flags |= libc::SHM_RDONLY;
        }
        let wanted = reservation.region_start();
        // SAFETY: the target range `wanted..wanted+size` lies inside our own reservation, which
        // nothing references, so replacing it is sound; `wanted` is aligned to the page size
        // (the reservation is), as shmat requires without SHM_RND.
        let attached = unsafe { libc::shmat(self.id, wanted.cast(), flags) };
        if attached as isize == -1 {
            let errno = last_errno();
            return Err(if errno == rustix::io::Errno::IDRM || errno == rustix::io::Errno::INVAL {
                Error::NotFound { target: label }
            } else {
                out_of_memory_or_os(errno, "shmat", &label, size, self.page_size)
            });
        }
        if attached.cast::<u8>() != wanted {
            // Not where asked: the reservation is intact, only this attachment must go.
            detach(attached.cast());
            return Err(Error::os("shmat (at the reserved address)", &label)(
                rustix::io::Errno::FAULT,
            ));
        }
        let mapping = reservation.into_mapping(size, self.page_size, access, Kind::SysV, &label);
        options.apply(&mapping)?;
        Ok(mapping)
    }

    /// `shmctl(id, IPC_RMID)`—Removes the segment: its key is free at once, its memory goes with
    /// the last attachment. A segment already gone is [`Error::NotFound`].
    ///
    /// # References
    ///  - [Linux `shmctl(2)`](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    #[doc(alias = "shmctl")]
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] once the segment is gone; [`Error::Os`] (`EPERM`) when the caller
    /// owns neither the segment nor `CAP_SYS_ADMIN`.
    #[doc(alias = "IPC_RMID")]
    pub fn remove(self) -> Result<()> {
        remove_id(self.id)
    }

    /// `shmctl(id, IPC_SET)`—Gives the segment to user `uid` and group `gid` with permission
    /// bits `mode`; see [`set_owner_id`].
    ///
    /// # References
    ///  - [Linux `shmctl(2)`](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    ///
    /// ```
    /// use shmkit_name::PageSize;
    /// use shmkit_os::sysv::SysvSegment;
    ///
    /// let segment = SysvSegment::create_private(4096, PageSize::Normal, 0o600)?;
    /// let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    /// segment.set_owner(uid, gid, 0o640)?;
    /// assert_eq!(segment.stat()?.mode, 0o640);
    /// segment.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set_owner_id`].
    #[doc(alias = "IPC_SET")]
    pub fn set_owner(&self, uid: u32, gid: u32, mode: u32) -> Result<()> {
        set_owner_id(self.id, uid, gid, mode)
    }
}

/// `shmctl(id, IPC_STAT)` then `shmctl(id, IPC_SET)`—Gives the segment with id `id` to user
/// `uid` and group `gid`, with permission bits `mode` (at most `0o777`); its size, creator and
/// times are unchanged.
///
/// The kernel allows it to the segment's owner or creator without privilege (anyone else needs
/// `CAP_SYS_ADMIN`), and the creator keeps the owner's rights after handing the segment over: a
/// creator can give a segment to a peer's user and still attach, use and remove it.
///
/// # References
///  - [Linux `shmctl(2)`](https://man7.org/linux/man-pages/man2/shmctl.2.html)
///
/// # Errors
///
/// [`Error::InvalidInput`] for a `mode` beyond `0o777`; [`Error::NotFound`] once the segment is
/// gone; [`Error::Os`] (`EPERM`) when the caller is neither its owner, its creator nor
/// privileged.
#[doc(alias = "shmctl")]
#[doc(alias = "IPC_SET")]
pub fn set_owner_id(id: i32, uid: u32, gid: u32, mode: u32) -> Result<()> {
    if mode > 0o777 {
        return Err(Error::invalid("mode", format!("{mode:o} has bits beyond 0o777")));
    }
    let mut ds = ipc_stat(id)?;
    ds.shm_perm.uid = uid;
    ds.shm_perm.gid = gid;
    ds.shm_perm.mode = mode as libc::c_ushort;
    // SAFETY: IPC_SET reads one shmid_ds, which `ds` is; the kernel copies it and keeps nothing.
    if unsafe { libc::shmctl(id, libc::IPC_SET, &raw mut ds) } < 0 {
        return Err(not_found_or_os(last_errno(), "shmctl(IPC_SET)", id));
    }
    Ok(())
}

/// `shmctl(id, IPC_RMID)`—Removes the segment with id `id` (as `ipcrm -m id` does); see
/// [`SysvSegment::remove`].
///
/// # References
///  - [Linux `shmctl(2)`](https://man7.org/linux/man-pages/man2/shmctl.2.html)
#[doc(alias = "shmctl")]
///
/// # Errors
///
/// As [`SysvSegment::remove`].
#[doc(alias = "IPC_RMID")]
pub fn remove_id(id: i32) -> Result<()> {
    // SAFETY: IPC_RMID reads no buffer; a null one is what the man page asks for.
    let result = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if result < 0 {
        return Err(not_found_or_os(last_errno(), "shmctl(IPC_RMID)", id));
    }
    Ok(())
}

/// `shmctl(id, IPC_STAT)`—What the kernel says of segment `id`.
///
/// # References
///  - [Linux `shmctl(2)`](https://man7.org/linux/man-pages/man2/shmctl.2.html)
#[doc(alias = "shmctl")]
///
/// # Errors
///
/// As [`SysvSegment::stat`].
#[doc(alias = "IPC_STAT")]
pub fn stat_id(id: i32) -> Result<SysvInfo> {
    Ok(SysvInfo::from_stat(id, &ipc_stat(id)?))
}

/// `shmctl(id, IPC_STAT)`, the kernel's record as it is.
fn ipc_stat(id: i32) -> Result<libc::shmid_ds> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a writable shmid_ds, the buffer IPC_STAT fills.
    let result = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    if result < 0 {
        return Err(not_found_or_os(last_errno(), "shmctl(IPC_STAT)", id));
    }
    // SAFETY: zero-initialised (every field is an integer, so all-zero is valid) and filled by
    // the kernel on success.
    Ok(unsafe { ds.assume_init() })
}

fn not_found_or_os(errno: rustix::io::Errno, op: &'static str, id: i32) -> Error {
    let target = format!("SysV shmid {id}");
    if errno == rustix::io::Errno::INVAL
        || errno == rustix::io::Errno::IDRM
        || errno == rustix::io::Errno::NOENT
    {
        Error::NotFound { target }
    } else {
        Error::os(op, target)(errno)
    }
}

/// `shmdt` of an attachment that landed away from its reservation; a failure would mean
/// `address` was not an attachment, which `shmat` just returned, so it is ignored.
fn detach(address: *mut u8) {
    // SAFETY: `address` is the start of a SysV attachment owned by a `Mapping` being dropped; no
    // reference into it outlives the mapping.
    let _ = unsafe { libc::shmdt(address.cast()) };
}

/// `SHM_HUGETLB` with the page size in the `SHM_HUGE_*` bits, or nothing for normal pages.
fn hugetlb_flags(page_size: PageSize) -> c_int {
    match page_size {
        PageSize::Normal => 0,
        PageSize::Huge | PageSize::Gigantic => {
            libc::SHM_HUGETLB | (page_size.log2() << SHM_HUGE_SHIFT).cast_signed()
        }
    }
}

/// `EINVAL` from `shmget` on creation means the size is out of the kernel's bounds; say which.
fn too_large_or_os(size: usize, label: &str, errno: rustix::io::Errno) -> Error {
    let shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match shmmax {
        Some(shmmax) if size as u64 > shmmax => Error::invalid(
            "size",
            format!(
                "{size} bytes for {label} exceed kernel.shmmax ({shmmax}): raise it with sysctl"
            ),
        ),
        _ => Error::os("shmget", label)(errno),
    }
}

/// The errno of the libc call that just failed on this thread.
fn last_errno() -> rustix::io::Errno {
    rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
        .unwrap_or(rustix::io::Errno::IO)
}

/// Every segment of this IPC namespace, from `/proc/sysvipc/shm` (what `ipcs -m` shows).
///
/// ```
/// use shmkit_name::PageSize;
/// use shmkit_os::sysv::{SysvSegment, list_sysv};
///
/// let segment = SysvSegment::create_private(4096, PageSize::Normal, 0o600)?;
/// assert!(list_sysv()?.iter().any(|info| info.id == segment.id() && info.size == 4096));
/// segment.remove()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Os`] if the file cannot be read; [`Error::Corrupted`] if it does not parse.
pub fn list_sysv() -> Result<Vec<SysvInfo>> {
    let text =
        std::fs::read_to_string(PROC_SYSVIPC_SHM).map_err(Error::io("read", PROC_SYSVIPC_SHM))?;
    parse_sysvipc_shm(&text)
}

/// Parses the text of `/proc/sysvipc/shm`, finding columns by the header line's names.
///
/// Keys are in decimal there, permissions in octal (with `SHM_DEST` and `SHM_LOCKED`), times in
/// seconds since the epoch. A line that does not parse is [`Error::Corrupted`]: the kernel wrote
/// it, so it means a format this code does not know.
///
/// # Errors
///
/// [`Error::Corrupted`] as said.
pub fn parse_sysvipc_shm(text: &str) -> Result<Vec<SysvInfo>> {
    let corrupted =
        |reason: String| Error::Corrupted { target: PROC_SYSVIPC_SHM.to_owned(), reason };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_ascii_whitespace().collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|&found| found == name)
            .ok_or_else(|| corrupted(format!("no `{name}` column in its header")))
    };
    let columns = Columns {
        key: column("key")?,
        id: column("shmid")?,
        perms: column("perms")?,
        size: column("size")?,
        cpid: column("cpid")?,
        lpid: column("lpid")?,
        nattch: column("nattch")?,
        uid: column("uid")?,
        gid: column("gid")?,
        cuid: column("cuid")?,
        cgid: column("cgid")?,
        atime: column("atime")?,
        dtime: column("dtime")?,
        ctime: column("ctime")?,
    };
    let mut out = Vec::new();
    for (index, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let info = columns
            .parse(&fields)
            .ok_or_else(|| corrupted(format!("line {} does not parse: {line:?}", index + 2)))?;
        out.push(info);
    }
    Ok(out)
}

/// Where each field is in a line of `/proc/sysvipc/shm`.
struct Columns {
    key: usize,
    id: usize,
    perms: usize,
    size: usize,
    cpid: usize,
    lpid: usize,
    nattch: usize,
    uid: usize,
    gid: usize,
    cuid: usize,
    cgid: usize,
    atime: usize,
    dtime: usize,
    ctime: usize,
}

impl Columns {
    fn parse(&self, fields: &[&str]) -> Option<SysvInfo> {
        let field = |index: usize| fields.get(index).copied();
        let number = |index: usize| field(index)?.parse::<u64>().ok();
        let small = |index: usize| field(index)?.parse::<u32>().ok();
        let mode = u32::from_str_radix(field(self.perms)?, 8).ok()?;
        let time =
            |index: usize| time_of(field(index)?.parse::<i64>().ok()?).map(Some).or(Some(None));
        Some(SysvInfo {
            id: field(self.id)?.parse().ok()?,
            key: SysvKey::new(field(self.key)?.parse().ok()?).ok(),
            size: number(self.size)?,
            mode: mode & 0o777,
            marked_for_removal: mode & SHM_DEST != 0,
            locked: mode & SHM_LOCKED != 0,
            uid: small(self.uid)?,
            gid: small(self.gid)?,
            cuid: small(self.cuid)?,
            cgid: small(self.cgid)?,
            creator_pid: small(self.cpid)?,
            last_pid: small(self.lpid)?,
            attach_count: number(self.nattch)?,
            attach_time: time(self.atime)?,
            detach_time: time(self.dtime)?,
            change_time: time(self.ctime)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
         0          1  1600                  4096  9743  9743      1     0     0     0     0 1795325440          0 1795325440                     0                     0
1592594997          2   600               2097152  9743     0      0  1000   100     0     0          0          0 1795325441                     0                     0
        -5          3  2640                  8192    12    13      2     1     2     3     4          0          0 1795325441                  4096                     0
";

    #[test]
    fn parses_proc_sysvipc_shm() {
        let listed = parse_sysvipc_shm(SAMPLE).unwrap_or_default();
        assert_eq!(listed.len(), 3);
        assert_eq!((listed[0].id, listed[0].key, listed[0].mode), (1, None, 0o600));
        assert!(listed[0].marked_for_removal && !listed[0].locked);
        assert_eq!(listed[0].attach_count, 1);
        assert_eq!(listed[0].detach_time, None);
        assert_eq!(listed[0].attach_time, time_of(1_795_325_440));
        assert_eq!(listed[1].key, SysvKey::new(0x5eed_1235).ok());
        assert_eq!((listed[1].size, listed[1].uid, listed[1].gid), (2_097_152, 1000, 100));
        assert_eq!(
            listed[2].key.map(|key| key.to_string()).as_deref(),
            Some("SysV key 0xfffffffb")
        );
        assert!(listed[2].locked && !listed[2].marked_for_removal);
        assert_eq!(
            (listed[2].cuid, listed[2].cgid, listed[2].creator_pid, listed[2].last_pid),
            (3, 4, 12, 13)
        );
    }

    #[test]
    fn header_only_and_bad_lines() {
        let header = SAMPLE.lines().next().unwrap_or("");
        assert_eq!(parse_sysvipc_shm(header).map(|listed| listed.len()).ok(), Some(0));
        assert!(matches!(parse_sysvipc_shm(""), Err(Error::Corrupted { .. })));
        let bad = format!("{header}\n 1 2 999 4096\n");
        assert!(matches!(parse_sysvipc_shm(&bad), Err(Error::Corrupted { .. })));
    }

    #[test]
    fn huge_flags() {
        assert_eq!(hugetlb_flags(PageSize::Normal), 0);
        assert_eq!(hugetlb_flags(PageSize::Huge), libc::SHM_HUGETLB | (21 << 26));
        assert_eq!(hugetlb_flags(PageSize::Gigantic), libc::SHM_HUGETLB | (30 << 26));
    }
}
