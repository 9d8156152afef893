//! When a process started, which with its pid names it for good: the bench records its own in its
//! region, and `gc` compares it to tell a dead creator from a new process with a reused pid.
//!
//! (Who maps a region, and where its pages are, comes from `shmkit_os::list::usage`.)

/// When process `pid` started, in clock ticks after boot (field 22 of `/proc/PID/stat`): with
/// the pid, it names a process for good, since a pid is reused only by a process started later.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) may hold spaces and parentheses: the fields resume after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_start_times() {
        let mine = start_time(std::process::id()).expect("this process has a start time");
        assert!(start_time(1).is_some_and(|init| init <= mine));
        assert_eq!(start_time(u32::MAX), None);
    }
}
