//! Carrying out a plan: sysfs writes, `mount(2)` and `umount2(2)`, one printed line per action so
//! that CI logs tell what happened; or, with `--dry-run`, only the lines.
//!
//! The only unsafe code of xtask is here: the libc calls std has no wrapper for.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::holders;
use super::plan::{Action, MountOptions};
use super::state::read_count;
use super::{Node, PageKind};
use crate::cmd::Error;

/// Where the kernel takes compaction requests; always the real procfs and sysfs.
const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";
/// See [`DROP_CACHES`].
const COMPACT_MEMORY: &str = "/proc/sys/vm/compact_memory";

/// `geteuid()`.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `getegid()`.
pub(crate) fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// What ends a teardown that found a mount in use.
const TEARDOWN_STOPPED: &str = "teardown stopped before releasing any page: end those processes (or \
     let them unmap the files) and run `cargo xtask setup-hugepages --teardown` again";

/// Carries out `actions` in order (or prints them). A pool left short or a busy mount does not
/// stop the other actions, except that no page is released once an unmount failed (the pages may
/// back files that are still mapped); every such failure is reported in the returned error.
pub(crate) fn execute(actions: &[Action], dry_run: bool) -> Result<(), Error> {
    if !dry_run {
        refuse_if_in_use(actions)?;
    }
    let mut failures = Vec::new();
    let mut busy = false;
    for action in actions {
        match action {
            Action::SetPages { node, kind, dir, from, to } => {
                if busy && to < from {
                    continue;
                }
                if dry_run {
                    print_set_pages(*node, *kind, dir, *from, *to);
                } else if let Err(short) = set_pages(*node, *kind, dir, *from, *to)? {
                    failures.push(short);
                }
            }
            Action::CreateDir { path } => {
                if dry_run {
                    println!("would create folder {}", path.display());
                } else {
                    fs::create_dir_all(path).map_err(|e| {
                        Error::Message(format!("cannot create {}: {e}", path.display()))
                    })?;
                    println!("created folder {}", path.display());
                }
            }
            Action::Mount { path, kind, options } => mount(path, *kind, *options, dry_run)?,
            Action::Unmount { path, pagesize } => {
                if let Err(failure) = unmount(path, pagesize, dry_run)? {
                    failures.push(failure);
                    busy = true;
                }
            }
        }
    }
    if busy {
        failures.push(TEARDOWN_STOPPED.to_owned());
    }
    if failures.is_empty() { Ok(()) } else { Err(Error::Message(failures.join("\n"))) }
}

/// Before unmounting anything, looks for processes that use any of the mounts, so that a teardown
/// that cannot finish leaves both mounts in place rather than one. `umount2` still has the last
/// word: a user this scan cannot see (another mount namespace) shows up as `EBUSY` later.
fn refuse_if_in_use(actions: &[Action]) -> Result<(), Error> {
    let mut messages = Vec::new();
    for action in actions {
        if let Action::Unmount { path, .. } = action {
            let holders = holders::scan(Path::new("/proc"), path);
            if !holders.is_empty() {
                messages.push(busy_message(path, "it is in use", &holders));
            }
        }
    }
    if messages.is_empty() {
        return Ok(());
    }
    messages.push(TEARDOWN_STOPPED.to_owned());
    Err(Error::Message(messages.join("\n")))
}

/// `cannot unmount PATH: WHY` and one line per process using it.
fn busy_message(path: &Path, why: &str, holders: &[holders::Holder]) -> String {
    let mut message = format!("cannot unmount {}: {why}", path.display());
    if holders.is_empty() {
        message.push_str(
            "; no process found using it (one in another mount namespace, or a mount below it, may hold it)",
        );
    }
    for holder in holders {
        message =
            format!("{message}\n  pid {} ({}) {}", holder.pid, holder.comm, holder.uses.join(", "));
    }
    message
}

/// The `--dry-run` lines of a pool change.
fn print_set_pages(node: Node, kind: PageKind, dir: &Path, from: u64, to: u64) {
    println!(
        "would write {to} to {} ({node}: nr_hugepages {}kB {from} -> {to})",
        dir.join("nr_hugepages").display(),
        kind.kib()
    );
    if to > from {
        println!(
            "would, if the kernel gives fewer, write 3 to {DROP_CACHES} and 1 to {COMPACT_MEMORY}{} and write {to} again",
            node_compact(node).map(|path| format!(" and {}", path.display())).unwrap_or_default()
        );
    }
}

/// Writes a pool's count and reads it back; a raise that comes up short is retried once after
/// freeing and compacting memory, since huge pages need physically contiguous memory that page
/// cache and fragmentation hold. `Ok(Err(..))` is a shortfall, worded for the user.
fn set_pages(
    node: Node,
    kind: PageKind,
    dir: &Path,
    from: u64,
    to: u64,
) -> Result<Result<(), String>, Error> {
    let file = dir.join("nr_hugepages");
    write(&file, to)?;
    let mut got = read_count(&file)?;
    if to > from && got < to {
        println!(
            "{node}: nr_hugepages {}kB {from} -> {got} (wanted {to}); dropping caches and compacting memory, then retrying",
            kind.kib()
        );
        compact(node);
        write(&file, to)?;
        got = read_count(&file)?;
    }
    println!("{node}: nr_hugepages {}kB {from} -> {got}", kind.kib());
    if to > from && got < to {
        return Ok(Err(format!(
            "{node}: wanted {to} {kind} ({}kB) pages, got {got} even after compaction: the node lacks {} of \
             free contiguous memory{}",
            kind.kib(),
            bytes(to.saturating_sub(got) * kind.kib() * 1024),
            match kind {
                PageKind::Gigantic => "; pass --gigantic 0 to do without 1 GiB pages",
                PageKind::Huge => "; free some memory or ask for fewer with --huge N",
            }
        )));
    }
    if to == 0 && got > 0 {
        // The kernel keeps pages in use until they are freed; nothing more we can do now.
        println!("{node}: {got} {kind} pages are still in use and will be released when freed");
    }
    Ok(Ok(()))
}

/// Frees page cache and compacts memory, best effort: a kernel without compaction still gets
/// the retry, and a failure here is reported but is not the user's problem to fix.
fn compact(node: Node) {
    // SAFETY: sync has no preconditions; dirty pages must be written before they can be dropped.
    unsafe { libc::sync() };
    let mut targets = vec![(PathBuf::from(DROP_CACHES), 3), (PathBuf::from(COMPACT_MEMORY), 1)];
    targets.extend(node_compact(node).map(|path| (path, 1)));
    for (path, value) in targets {
        if let Err(error) = write(&path, value) {
            println!("warning: {error}");
        }
    }
}

/// A node's own compaction trigger, when the kernel has one.
fn node_compact(node: Node) -> Option<PathBuf> {
    let Node::Numa(node) = node else { return None };
    Some(PathBuf::from(format!("/sys/devices/system/node/node{node}/compact")))
        .filter(|path| path.exists())
}

/// `mount("none", path, "hugetlbfs", MS_NOSUID | MS_NODEV, "pagesize=..,mode=..,uid=..,gid=..")`.
/// `nosuid,nodev` because the root is world-writable by default and holds only memory files.
fn mount(path: &Path, kind: PageKind, options: MountOptions, dry_run: bool) -> Result<(), Error> {
    let data = format!(
        "pagesize={},mode={:04o},uid={},gid={}",
        kind.pagesize_option(),
        options.mode,
        options.uid,
        options.gid
    );
    let owner = if options.uid == 0 && options.gid == 0 {
        String::new()
    } else {
        format!(", uid {}, gid {}", options.uid, options.gid)
    };
    if dry_run {
        println!(
            "would mount hugetlbfs pagesize={} at {} (mode {:04o}{owner}): mount(\"none\", {:?}, \"hugetlbfs\", \
             MS_NOSUID|MS_NODEV, {data:?})",
            kind.pagesize_option(),
            path.display(),
            options.mode,
            path.display().to_string(),
        );
        return Ok(());
    }
    let target = c_path(path)?;
    let data = CString::new(data).map_err(|e| Error::Message(format!("mount options: {e}")))?;
    // SAFETY: the four strings are NUL-terminated and live across the call; hugetlbfs reads the
    // data argument as a NUL-terminated option string.
    let result = unsafe {
        libc::mount(
            c"none".as_ptr(),
            target.as_ptr(),
            c"hugetlbfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if result != 0 {
        let error = io::Error::last_os_error();
        let hint = match error.raw_os_error() {
            Some(libc::EINVAL) => ": the kernel refused the options (is this page size offered?)",
            Some(libc::EPERM) => ": not permitted (root in the initial mount namespace needed)",
            _ => "",
        };
        return Err(Error::Message(format!(
            "cannot mount hugetlbfs pagesize={} at {}: {error}{hint}",
            kind.pagesize_option(),
            path.display()
        )));
    }
    println!(
        "mounted hugetlbfs pagesize={} at {} (mode {:04o}{owner})",
        kind.pagesize_option(),
        path.display(),
        options.mode
    );
    Ok(())
}

/// `umount2(path, 0)`. A busy mount is `Ok(Err(..))` naming who keeps it busy; other failures
/// are errors. Files left in the mount are listed first: unmounting discards them.
fn unmount(path: &Path, pagesize: &str, dry_run: bool) -> Result<Result<(), String>, Error> {
    if dry_run {
        println!(
            "would unmount hugetlbfs pagesize={pagesize} at {}: umount2({:?}, 0)",
            path.display(),
            path.display().to_string()
        );
        return Ok(Ok(()));
    }
    let files = files_in(path);
    let target = c_path(path)?;
    // SAFETY: `target` is a NUL-terminated path that lives across the call.
    let result = unsafe { libc::umount2(target.as_ptr(), 0) };
    if result == 0 {
        for (file, size) in files {
            println!("discarded {} ({}): it was left in the mount", file.display(), bytes(size));
        }
        println!("unmounted hugetlbfs pagesize={pagesize} at {}", path.display());
        return Ok(Ok(()));
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EBUSY) {
        return Err(Error::Message(format!("cannot unmount {}: {error}", path.display())));
    }
    let holders = holders::scan(Path::new("/proc"), path);
    Ok(Err(busy_message(path, "it is busy (EBUSY)", &holders)))
}

/// The files directly in a mount and their sizes, best effort (for the teardown report).
fn files_in(path: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = fs::read_dir(path) else { return Vec::new() };
    let mut files: Vec<(PathBuf, u64)> = entries
        .flatten()
        .map(|entry| (entry.path(), entry.metadata().map_or(0, |meta| meta.len())))
        .collect();
    files.sort();
    files
}

/// A path as a C string; a path with a NUL cannot exist, so it is refused.
fn c_path(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Message(format!("{} contains a NUL byte", path.display())))
}

/// Writes a number into a procfs or sysfs file.
fn write(path: &Path, value: u64) -> Result<(), Error> {
    fs::write(path, value.to_string())
        .map_err(|e| Error::Message(format!("cannot write {value} to {}: {e}", path.display())))
}

/// A byte count in the largest binary unit that divides it (`2 MiB`, `1 GiB`, `4096 B`).
fn bytes(count: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if count != 0 && count.trailing_zeros() >= shift {
            return format!("{} {unit}", count >> shift);
        }
    }
    format!("{count} B")
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(bytes(2 << 20), "2 MiB");
        assert_eq!(bytes(3 << 30), "3 GiB");
        assert_eq!(bytes(1536), "1536 B");
        assert_eq!(bytes(0), "0 B");
    }
}
