//! Segments left behind by creators that died: found by [`stale`], removed by [`remove_stale`]
//! (what `shmkit gc` runs). What counts as stale is on [`stale`].

use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use shmkit_name::{Name, PageSize};
use shmkit_os::sysv::{SysvInfo, SysvKey, SysvSegment};
use shmkit_os::{Access, MapOptions};
use shmkit_sync::SemLock;

use crate::backing::{Implementation, NAME_PREFIX, lock_error};
use crate::error::{Error, Result};
use crate::layout::{HEADER_SIZE, LAYOUT_VERSION, MAGIC, STATE_PUBLISHED, Snapshot};
use crate::process::{self, Identity, Liveness};

/// Why a segment is stale (besides nobody mapping it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StaleReason {
    /// No process has the creator's pid (or it is a zombie).
    CreatorDead,
    /// The creator's pid belongs to a process that started later: the creator is gone.
    CreatorPidReused,
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreatorDead => "creator dead, mapped by no process",
            Self::CreatorPidReused => "creator gone (its pid was reused), mapped by no process",
        })
    }
}

/// A segment whose creator is gone and that no process maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleSegment {
    /// POSIX or System V.
    pub implementation: Implementation,
    /// The segment's name (the file in `/dev/shm` for POSIX).
    pub name: Name,
    /// The file, for POSIX segments.
    pub path: Option<PathBuf>,
    /// The System V segment id.
    pub sysv_id: Option<i32>,
    /// The System V key (shared by the segment and its semaphore).
    pub sysv_key: Option<SysvKey>,
    /// Its size in bytes, from the OS.
    pub size: u64,
    /// The creator's pid.
    pub creator_pid: u32,
    /// Whether the creator published it (false: it died while creating it).
    pub published: bool,
    /// Why it is stale.
    pub reason: StaleReason,
}

impl StaleSegment {
    /// Removes the segment if it is still stale (checked again now): for POSIX its file, for
    /// System V the segment and its semaphore. `Ok(false)` if it no longer is (mapped since, or
    /// gone).
    pub fn remove(&self) -> Result<bool> {
        if self.implementation == Implementation::SysV {
            self.remove_sysv()
        } else {
            self.remove_posix()
        }
    }

    fn remove_posix(&self) -> Result<bool> {
        if check_posix(&self.name)?.is_none() {
            return Ok(false);
        }
        match shmkit_os::unlink(&self.name, PageSize::Normal) {
            Ok(()) => Ok(true),
            Err(shmkit_os::Error::NotFound { .. }) => Ok(false),
            Err(error) => {
                Err(Error::memory("remove", &crate::backing::posix_label(&self.name), error))
            }
        }
    }

    fn remove_sysv(&self) -> Result<bool> {
        let Some(id) = self.sysv_id else { return Ok(false) };
        let Ok(info) = shmkit_os::sysv::stat_id(id) else { return Ok(false) };
        let Some(now) = check_sysv(&info) else { return Ok(false) };
        if now.name != self.name {
            return Ok(false);
        }
        let label = crate::backing::sysv_label(&self.name, Some(id));
        match shmkit_os::sysv::remove_id(id) {
            Ok(()) => {}
            Err(shmkit_os::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(Error::memory("remove", &label, error)),
        }
        // The semaphore with the segment's key is the segment's (see the module docs).
        let key = SysvKey::of(&self.name).get();
        let semaphore = SemLock::id_of_key(key).map_err(|source| lock_error(&label, source))?;
        if let Some(semaphore) = semaphore {
            match SemLock::remove_id(semaphore).map_err(|source| lock_error(&label, source)) {
                // Gone since `semget`: nothing left to remove.
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}

impl fmt::Display for StaleSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.sysv_id) {
            (Some(path), _) => write!(f, "{} {}", self.implementation, path.display())?,
            (None, Some(id)) => write!(f, "{} {} (shmid {id})", self.implementation, self.name)?,
            (None, None) => write!(f, "{} {}", self.implementation, self.name)?,
        }
        write!(
            f,
            ": {} bytes, creator pid {}{}: {}",
            self.size,
            self.creator_pid,
            if self.published { "" } else { " (died while creating it)" },
            self.reason
        )
    }
}

fn io_error<'a>(op: &'static str, target: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Os { op, target: target.to_owned(), source }
}

/// Every stale shmkit segment of this host's `/dev/shm` and of this IPC namespace. Changes
/// nothing.
///
/// A segment is stale when all of these hold:
/// - it is a shmkit segment: a POSIX one in `/dev/shm` whose file name starts with
///   [`NAME_PREFIX`](crate::NAME_PREFIX), or a System V one, and in both cases its header starts
///   with the segment magic and layout version and names the segment (for System V, the
///   segment's key must be the key of the name in its header: that also ties the semaphore with
///   the same key to it);
/// - its creator is gone: no process has the creator's pid, or it is a zombie, or the process
///   with that pid started at another time than the header records (System V: the kernel's
///   records are used, the creator's pid `shm_cpid`, and `shm_ctime`, before which the creator
///   started);
/// - no process maps it: no `/proc/PID/maps` names its file (POSIX), its attach count is 0
///   (System V).
///
/// Anything that cannot be read (another user's segment without privilege, a file that vanishes
/// meanwhile) is left alone: in doubt, a segment is not stale. memfd segments are never stale:
/// they disappear with their last descriptor and mapping.
///
/// ```
/// let stale = shmkit_segment::stale()?;
/// for segment in &stale {
///     println!("{segment}");
/// }
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
pub fn stale() -> Result<Vec<StaleSegment>> {
    let mut out = Vec::new();
    let dir = Path::new(shmkit_os::mounts::POSIX_SHM_DIR);
    if dir.is_dir() {
        let entries = std::fs::read_dir(dir).map_err(io_error("read_dir", "/dev/shm"))?;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            if !file_name.starts_with(NAME_PREFIX) {
                continue;
            }
            // Not following links: a link under our prefix is not a segment.
            let Ok(file_type) = entry.file_type() else { continue };
            if !file_type.is_file() {
                continue;
            }
            let Ok(name) = Name::new(file_name) else { continue };
            if let Some(found) = check_posix(&name)? {
                out.push(found);
            }
        }
    }
    let segments = match shmkit_os::sysv::list_sysv() {
        Ok(segments) => segments,
        // No System V IPC in this kernel: nothing to find there.
        Err(shmkit_os::Error::Os { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Vec::new()
        }
        Err(error) => return Err(Error::memory("list", "/proc/sysvipc/shm", error)),
    };
    out.extend(segments.iter().filter_map(check_sysv));
    Ok(out)
}

/// Removes every stale segment ([`stale`], each checked again right before its removal);
/// returns those removed.
pub fn remove_stale() -> Result<Vec<StaleSegment>> {
    let mut removed = Vec::new();
    for segment in stale()? {
        if segment.remove()? {
            removed.push(segment);
        }
    }
    Ok(removed)
}

/// The POSIX segment `name`, if it is stale. Reads its header with `pread`, so that looking
/// does not map it.
fn check_posix(name: &Name) -> Result<Option<StaleSegment>> {
    let path = Path::new(shmkit_os::mounts::POSIX_SHM_DIR).join(name.as_str());
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let Ok(fd) = rustix::fs::open(&path, flags, Mode::empty()) else {
        // Gone, or not readable by this process: not ours to judge.
        return Ok(None);
    };
    let Ok(stat) = rustix::fs::fstat(&fd) else { return Ok(None) };
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile
        || size < HEADER_SIZE as u64
    {
        return Ok(None);
    }
    let mut bytes = [0; HEADER_SIZE];
    match rustix::io::pread(fd.as_fd(), &mut bytes, 0) {
        Ok(HEADER_SIZE) => {}
        _ => return Ok(None),
    }
    let snapshot = Snapshot::parse(&bytes);
    if !is_segment(&snapshot, Implementation::Posix) || snapshot.name != name.key() {
        return Ok(None);
    }
    let creator = Identity { pid: snapshot.creator_pid, start_time: snapshot.creator_start };
    let Some(reason) = gone(creator) else { return Ok(None) };
    let mappers = shmkit_os::list::mappers(&path)
        .map_err(|error| Error::memory("list the mappers", &path.display().to_string(), error))?;
    if !mappers.is_empty() {
        return Ok(None);
    }
    Ok(Some(StaleSegment {
        implementation: Implementation::Posix,
        name: *name,
        path: Some(path),
        sysv_id: None,
        sysv_key: None,
        size,
        creator_pid: creator.pid,
        published: snapshot.state == STATE_PUBLISHED,
        reason,
    }))
}

/// The System V segment `info`, if it is a stale shmkit segment.
///
/// Whether its creator is gone is decided from what the kernel records, before anything else:
/// the creator's pid (`shm_cpid`), and the segment's last change (`shm_ctime`, at creation or
/// when the creator handed it to a peer), which a process holding that pid now must have started
/// before to be the creator. Only a segment whose creator is gone and which nobody attaches is
/// then attached, read-only and briefly, to read its header.
fn check_sysv(info: &SysvInfo) -> Option<StaleSegment> {
    let key = info.key?;
    if info.attach_count != 0 || info.marked_for_removal || info.size < HEADER_SIZE as u64 {
        return None;
    }
    let creator = Identity { pid: info.creator_pid, start_time: 0 };
    let reason = match process::liveness(creator) {
        Liveness::Dead => StaleReason::CreatorDead,
        Liveness::Replaced => StaleReason::CreatorPidReused,
        Liveness::Alive => {
            let changed = info.change_time?;
            if !process::started_after(info.creator_pid, changed) {
                return None;
            }
            StaleReason::CreatorPidReused
        }
    };
    let segment = SysvSegment::open_id(info.id, PageSize::Normal).ok()?;
    let mapping = segment.attach(&MapOptions::new().access(Access::ReadOnly)).ok()?;
    let mut bytes = [0; HEADER_SIZE];
    mapping.read_at(0, &mut bytes).ok()?;
    drop(mapping);
    let snapshot = Snapshot::parse(&bytes);
    if !is_segment(&snapshot, Implementation::SysV) {
        return None;
    }
    let name = snapshot.name.to_name().ok()?;
    if !name.as_str().starts_with(NAME_PREFIX) || SysvKey::of(&name) != key {
        return None;
    }
    // Attached by someone meanwhile (our own attachment is gone): not stale.
    let now = shmkit_os::sysv::stat_id(info.id).ok()?;
    if now.attach_count != 0 || now.key != Some(key) {
        return None;
    }
    Some(StaleSegment {
        implementation: Implementation::SysV,
        name,
        path: None,
        sysv_id: Some(info.id),
        sysv_key: Some(key),
        size: info.size,
        creator_pid: info.creator_pid,
        published: snapshot.state == STATE_PUBLISHED,
        reason,
    })
}

/// A header of this layout version, of a segment of `implementation`.
fn is_segment(snapshot: &Snapshot, implementation: Implementation) -> bool {
    snapshot.magic == MAGIC
        && snapshot.version == LAYOUT_VERSION
        && snapshot.implementation == implementation.code()
}

/// Why the creator is gone, or `None` while it may live.
fn gone(creator: Identity) -> Option<StaleReason> {
    match process::liveness(creator) {
        Liveness::Alive => None,
        Liveness::Dead => Some(StaleReason::CreatorDead),
        Liveness::Replaced => Some(StaleReason::CreatorPidReused),
    }
}
