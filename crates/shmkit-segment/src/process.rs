//! Who a process is, in a way that survives pid reuse: its pid and its start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot). The segment header records its creator this way,
//! and the lock records its holder, so that a dead creator or holder is told from a new process
//! that got the same pid.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A process: pid and start time (0 when `/proc` could not tell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
}

impl Identity {
    /// The one-word form kept in the lock's holder record: pid in the low 32 bits, the low 32
    /// bits of the start time above. Never 0 (a pid is never 0).
    pub(crate) fn word(self) -> u64 {
        (self.start_time << 32) | u64::from(self.pid)
    }

    /// The pid of a holder word.
    pub(crate) fn pid_of_word(word: u64) -> u32 {
        word as u32
    }
}

/// This process (the start time is read once per pid, so a forked child reads its own).
pub(crate) fn current() -> Identity {
    static CACHED_PID: AtomicU64 = AtomicU64::new(0);
    static CACHED_START: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    if CACHED_PID.load(Ordering::Acquire) == u64::from(pid) {
        return Identity { pid, start_time: CACHED_START.load(Ordering::Relaxed) };
    }
    let start_time = stat(pid).map_or(0, |stat| stat.start_time);
    CACHED_START.store(start_time, Ordering::Relaxed);
    CACHED_PID.store(u64::from(pid), Ordering::Release);
    Identity { pid, start_time }
}

/// What `/proc` and `kill(pid, 0)` say of a recorded process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// It runs (or cannot be proven gone: another user's process under `hidepid`, say).
    Alive,
    /// No process has that pid, or it is a zombie (killed, not yet reaped).
    Dead,
    /// A process has that pid but started at another time: the recorded one is gone and its pid
    /// was reused.
    Replaced,
}

/// Whether the process recorded as `identity` still runs. Uncertainty counts as alive: calling a
/// live process dead would let a segment in use be removed.
pub(crate) fn liveness(identity: Identity) -> Liveness {
    let Some(pid) = i32::try_from(identity.pid).ok().and_then(rustix::process::Pid::from_raw)
    else {
        // Pid 0 or beyond any pid: nobody (a header that was never filled, or garbage).
        return Liveness::Dead;
    };
    if rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH) {
        return Liveness::Dead;
    }
    match stat(identity.pid) {
        Some(stat) if matches!(stat.state, b'Z' | b'X' | b'x') => Liveness::Dead,
        Some(stat)
            if identity.start_time != 0
                && stat.start_time != 0
                && stat.start_time != identity.start_time =>
        {
            Liveness::Replaced
        }
        _ => Liveness::Alive,
    }
}

/// Whether the process `pid` started after `time` (by more than the second of rounding that
/// `/proc` allows): then it cannot be whoever had that pid at `time`. False when unsure.
pub(crate) fn started_after(pid: u32, time: SystemTime) -> bool {
    let Some(stat) = stat(pid) else { return false };
    let Some(boot) = boot_time() else { return false };
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let started = boot + stat.start_time / ticks;
    let Ok(since_epoch) = time.duration_since(SystemTime::UNIX_EPOCH) else { return false };
    started > since_epoch.as_secs() + 1
}

/// The boot time in seconds since the epoch (`btime` of `/proc/stat`).
fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

/// The parts of `/proc/PID/stat` used here.
struct Stat {
    state: u8,
    start_time: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `pid (comm) state ...`: comm may hold spaces and parentheses, so fields are counted after the
/// last `)`. Field 3 is the state, field 22 the start time.
fn parse_stat(text: &str) -> Option<Stat> {
    let mut fields = text.get(text.rfind(')')? + 1..)?.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let text = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let stat = parse_stat(text).expect("parses");
        assert_eq!((stat.state, stat.start_time), (b'S', 98_765));
        assert!(parse_stat("42 (x) S 1").is_none());
        assert!(parse_stat("no parenthesis").is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not_it() {
        let me = current();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(liveness(me), Liveness::Alive);
        assert_eq!(Identity::pid_of_word(me.word()), me.pid);
        if me.start_time != 0 {
            let other = Identity { start_time: me.start_time + 1, ..me };
            assert_eq!(liveness(other), Liveness::Replaced);
        }
        assert_eq!(liveness(Identity { pid: 0, start_time: 0 }), Liveness::Dead);
        assert_eq!(liveness(Identity { pid: u32::MAX, start_time: 0 }), Liveness::Dead);
    }

    #[test]
    fn this_process_started_before_now_and_after_the_epoch() {
        let hour = std::time::Duration::from_secs(3600);
        assert!(!started_after(me_pid(), SystemTime::now()));
        assert!(!started_after(me_pid(), SystemTime::now() + hour));
        assert!(started_after(me_pid(), SystemTime::UNIX_EPOCH + hour));
        assert!(!started_after(u32::MAX, SystemTime::UNIX_EPOCH), "no such process: unsure");
    }

    fn me_pid() -> u32 {
        std::process::id()
    }
}
