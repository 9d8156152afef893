//! Who this process is, and whether the process behind a word in the lock is still alive.
//!
//! A process is named in the lock by one `u64`: its pid in the low 32 bits and, above it, a tag
//! of 30 bits from its start time (field 22 of `/proc/PID/stat`, clock ticks since boot). The
//! tag tells a recycled pid from the process that held it; it is 0 (unknown) when `/proc` cannot
//! be read, and then only the pid is compared.

use std::cell::Cell;
use std::sync::Once;

use rustix::io::Errno;
use rustix::process::Pid;

use crate::primitive::{AtomicU32, AtomicU64, Ordering};

const TAG_BITS: u32 = 30;
const TAG_MASK: u32 = (1 << TAG_BITS) - 1;

/// This process's identity, computed once per process (0: not yet, or forgotten by a fork).
static IDENTITY: AtomicU64 = AtomicU64::new(0);

/// This process's identity word (never 0).
pub(super) fn current() -> u64 {
    match IDENTITY.load(Ordering::Relaxed) {
        0 => compute(),
        identity => identity,
    }
}

#[cold]
fn compute() -> u64 {
    static AT_FORK: Once = Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a child-side handler that only stores to an atomic. Its return
        // (ENOMEM) is ignored: a forked child would then reuse the parent's identity, which the
        // docs of `RwLock` warn against anyway (do not fork while holding a guard).
        unsafe { libc::pthread_atfork(None, None, Some(forget_identity)) };
    });
    let pid = rustix::process::getpid().as_raw_nonzero().get().unsigned_abs();
    let tag = stat(pid).map_or(0, |stat| stat.tag);
    let identity = u64::from(tag) << 32 | u64::from(pid);
    IDENTITY.store(identity, Ordering::Relaxed);
    identity
}

/// After `fork`, the child is another process: it computes its own identity on first use.
extern "C" fn forget_identity() {
    IDENTITY.store(0, Ordering::Relaxed);
}

/// The pid in an identity word.
pub(super) fn pid_of(word: u64) -> u32 {
    word as u32
}

/// Whether the process named by `word` may still be alive. A process is dead when `kill(pid, 0)`
/// says no such process, when `/proc` shows it a zombie (killed, not yet reaped: `kill` still
/// finds it), or when `/proc` shows a different start time (the pid was recycled). Anything
/// uncertain (`/proc` unreadable, say with `hidepid`) counts as alive: waiting too long is
/// better than letting two holders in.
pub(super) fn is_alive(word: u64) -> bool {
    let pid = pid_of(word);
    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        // Pid 0 or beyond any pid: no process, so no holder (a corrupt word).
        return false;
    };
    if rustix::process::test_kill_process(raw) == Err(Errno::SRCH) {
        return false;
    }
    let tag = (word >> 32) as u32 & TAG_MASK;
    match stat(pid) {
        Some(stat) if matches!(stat.state, b'Z' | b'X' | b'x') => false,
        Some(stat) if tag != 0 && stat.tag != 0 && stat.tag != tag => false,
        _ => true,
    }
}

/// The parts of `/proc/PID/stat` the lock needs.
struct Stat {
    state: u8,
    tag: u32,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last ')'.
    let mut fields = text.get(text.rfind(')')? + 1..)?.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 was the state; field 22 is the start time.
    let start_time: u64 = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, tag: start_time as u32 & TAG_MASK })
}

thread_local! {
    /// The reader slot this thread tries first (`usize::MAX`: not chosen yet).
    static SLOT_HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The slot index this thread should try first, out of `slots`.
pub(super) fn slot_hint(slots: usize) -> usize {
    SLOT_HINT.with(|hint| {
        if hint.get() == usize::MAX {
            // Spread threads of one process, and processes, over the table.
            static THREADS: AtomicU32 = AtomicU32::new(0);
            let thread = THREADS.fetch_add(1, Ordering::Relaxed) as usize;
            let pid = pid_of(current()) as usize;
            hint.set(pid.wrapping_mul(7).wrapping_add(thread.wrapping_mul(13)) % slots);
        }
        hint.get() % slots
    })
}

/// Remembers the slot this thread got, to try it first next time.
pub(super) fn remember_slot(slot: usize) {
    SLOT_HINT.with(|hint| hint.set(slot));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_named_by_its_pid() {
        let me = current();
        assert_eq!(pid_of(me), std::process::id());
        assert!(is_alive(me));
        assert_eq!(me >> (32 + TAG_BITS), 0, "the lock's two flag bits stay clear");
    }

    #[test]
    fn a_recycled_pid_is_not_the_same_process() {
        let me = current();
        let tag = (me >> 32) as u32;
        if tag == 0 {
            eprintln!("skipped: /proc/self/stat unreadable, no start-time tag");
            return;
        }
        let other_start = u64::from((tag + 1) & TAG_MASK) << 32;
        assert!(!is_alive(other_start | u64::from(pid_of(me))));
    }

    #[test]
    fn pid_zero_and_huge_pids_are_nobody() {
        assert!(!is_alive(0));
        assert!(!is_alive(u64::from(u32::MAX)));
    }
}
