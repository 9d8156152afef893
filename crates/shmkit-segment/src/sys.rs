//! The System V calls that neither rustix nor `shmkit-os` offers, all in this file:
//! `shmctl(IPC_SET)` and `semctl(IPC_SET)` to hand a segment and its semaphore to a peer's user,
//! and `semget` + `semctl(IPC_RMID)` to remove the semaphore of a stale segment found by key.
//!
//! (`shmkit-os` is where such calls belong; they live here until it has them, see the crate
//! docs.)

use std::io;
use std::mem::MaybeUninit;

/// `shmctl(id, IPC_STAT)` then `shmctl(id, IPC_SET)` with the owner `uid`/`gid` and `mode`.
///
/// The kernel allows it to the segment's owner or creator (no privilege needed), and the
/// creator keeps the owner's rights after handing the segment over.
pub(crate) fn set_shm_owner(id: i32, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a writable shmid_ds, the buffer IPC_STAT fills.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised (all-integer struct, so valid) and filled by the kernel.
    let mut ds = unsafe { ds.assume_init() };
    ds.shm_perm.uid = uid;
    ds.shm_perm.gid = gid;
    ds.shm_perm.mode = (mode & 0o777) as libc::c_ushort;
    // SAFETY: IPC_SET reads one shmid_ds, which `ds` is; the kernel copies it and keeps nothing.
    if unsafe { libc::shmctl(id, libc::IPC_SET, &raw mut ds) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `semctl(id, 0, IPC_STAT)` then `semctl(id, 0, IPC_SET)` with the owner `uid`/`gid` and `mode`.
pub(crate) fn set_sem_owner(id: i32, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    let mut ds = MaybeUninit::<libc::semid_ds>::zeroed();
    // SAFETY: IPC_STAT writes one semid_ds through the pointer (glibc passes `union semun`'s
    // `buf` as a pointer), into storage of that type.
    if unsafe { libc::semctl(id, 0, libc::IPC_STAT, ds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised (all-integer struct, so valid) and filled by the kernel.
    let mut ds = unsafe { ds.assume_init() };
    ds.sem_perm.uid = uid;
    ds.sem_perm.gid = gid;
    ds.sem_perm.mode = (mode & 0o777) as libc::c_ushort;
    // SAFETY: IPC_SET reads one semid_ds through the pointer; the kernel keeps nothing.
    if unsafe { libc::semctl(id, 0, libc::IPC_SET, &raw mut ds) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The id of the semaphore set with `key`, if there is one (`semget(key, 0, 0)`).
pub(crate) fn semaphore_of_key(key: i32) -> io::Result<Option<i32>> {
    // SAFETY: semget only reads its integer arguments.
    let id = unsafe { libc::semget(key, 0, 0) };
    if id < 0 {
        let error = io::Error::last_os_error();
        return if error.raw_os_error() == Some(libc::ENOENT) { Ok(None) } else { Err(error) };
    }
    Ok(Some(id))
}

/// `semctl(id, 0, IPC_RMID)`.
pub(crate) fn remove_semaphore(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no fourth argument and touches no memory of ours.
    if unsafe { libc::semctl(id, 0, libc::IPC_RMID) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
