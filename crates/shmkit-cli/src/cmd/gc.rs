//! `shmkit gc`: removes the regions shmkit made whose creator is gone and that no process maps.
//!
//! A region is collected only when all three are known, so what is in use, and what shmkit did not
//! make, is never touched:
//! - **shmkit made it, and recorded its creator**:
//!   - a segment of `shmkit-segment` (POSIX `shmkit-seg-*` or System V, whose header records its
//!     creator): judged by that crate's own check ([`shmkit_segment::stale`]), which removes a
//!     System V segment's semaphore with it;
//!   - a bench region (name `shmkit-bench-PID-N` and a control block starting with `SHMKBNCH`
//!     that records the creator's pid and start time);
//!   - a staging file of an unfinished `create` (`.shmkit-new-PID-N-NAME` in /dev/shm or a shmkit
//!     hugetlbfs mount, which `shmkit-os` renames to the region's name once it is complete; read
//!     with `shmkit_os::StagingName`, the code that writes it);
//! - **the creator is gone**: no process has its pid, or the one that has it started after the
//!   region was made (the pid was reused);
//! - **no process maps it** (`/proc/*/maps`; the attach count for System V).
//!
//! Regions made by `shmkit create` or by programs with `shmkit-os` record no creator (their bytes
//! are the user's), and rings record none in their header: gc leaves them alone and says how many
//! it left.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use shmkit_name::PageSize;
use shmkit_os::StagingName;
use shmkit_os::list::RegionKind;
use shmkit_os::list::usage::{self, Target};
use shmkit_os::mounts;

use crate::args::GcArgs;
use crate::cmd::bench::layout as bench;
use crate::error::{CliError, Result};
use crate::output;
use crate::process;
use crate::target::host_regions;

/// `shmkit gc --json`.
#[derive(Debug, Serialize)]
pub struct GcOutput {
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// Removed (or, in a dry run, to be removed).
    pub removed: Vec<GcEntry>,
    /// Made by shmkit but kept: in use, or the creator is alive.
    pub kept: Vec<GcEntry>,
    /// Regions on the host that gc does not judge (not made by shmkit, or no creator recorded).
    pub not_judged: usize,
}

/// One region gc looked at.
#[derive(Debug, Serialize)]
pub struct GcEntry {
    /// Its file.
    pub path: String,
    /// `segment`, `bench region` or `unfinished create`.
    pub what: &'static str,
    /// The creator's pid.
    pub creator_pid: u32,
    /// Why it was removed or kept.
    pub reason: String,
    /// Set when removing it failed: the error.
    pub error: Option<String>,
}

/// A candidate: a file shmkit made, and who made it.
struct Candidate {
    path: PathBuf,
    what: &'static str,
    creator_pid: u32,
    /// The creator's start time (clock ticks after boot), when recorded.
    creator_start: Option<u64>,
    /// When the file was last changed, seconds since the epoch (for staging files, whose creator
    /// recorded no start time: a process started after this did not make it).
    changed: i64,
}

/// Clock ticks per second and the boot time, to compare a process's start with a file's time.
fn boot_time() -> Option<i64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// Whether the creator is alive: its pid runs, and is the same process (started no later than
/// the region was made).
fn creator_alive(candidate: &Candidate) -> bool {
    let Some(start) = process::start_time(candidate.creator_pid) else { return false };
    if let Some(recorded) = candidate.creator_start {
        return start == recorded;
    }
    let ticks = rustix::param::clock_ticks_per_second();
    match (boot_time(), i64::try_from(start / ticks.max(1)).ok()) {
        // Started after the file changed: another process with a reused pid.
        (Some(boot), Some(after_boot)) => boot + after_boot <= candidate.changed,
        // Cannot tell: count it as alive, so nothing is removed on a guess.
        _ => true,
    }
}

/// Reads a bench region's control block: creator pid and start time.
fn bench_creator(path: &Path) -> Option<(u32, u64)> {
    use std::os::unix::fs::FileExt;
    let mut block = [0_u8; 32];
    fs::File::open(path).ok()?.read_exact_at(&mut block, 0).ok()?;
    let word = |at: usize| {
        block.get(at..at + 8).and_then(|bytes| bytes.try_into().ok()).map(u64::from_le_bytes)
    };
    if word(bench::OFFSET_MAGIC)? != bench::MAGIC || word(bench::OFFSET_VERSION)? != bench::VERSION
    {
        return None;
    }
    Some((
        u32::try_from(word(bench::OFFSET_CREATOR_PID)?).ok()?,
        word(bench::OFFSET_CREATOR_START)?,
    ))
}

/// Staging files in the folders shmkit creates regions in.
fn staging_files() -> Vec<Candidate> {
    let mut out = Vec::new();
    for page_size in PageSize::ALL {
        let Ok(dir) = mounts::region_dir(page_size) else { continue };
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Some(staging) = entry.file_name().to_str().and_then(StagingName::parse) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.file_type().is_file() {
                continue;
            }
            out.push(Candidate {
                path: entry.path(),
                what: "unfinished create",
                creator_pid: staging.pid,
                creator_start: None,
                changed: meta.ctime(),
            });
        }
    }
    out
}

/// Runs `shmkit gc`.
pub fn run(args: &GcArgs) -> Result<()> {
    let regions = host_regions()?;
    let mut candidates = Vec::new();
    let mut not_judged: usize = 0;
    for region in &regions {
        let listed = &region.listed;
        let bench_made = matches!(
            listed.kind,
            RegionKind::Posix | RegionKind::Hugetlbfs(_) | RegionKind::ForeignHugetlbfs { .. }
        ) && listed.name.starts_with(bench::NAME_PREFIX);
        let creator = bench_made.then(|| listed.path.as_deref().and_then(bench_creator)).flatten();
        match (creator, &listed.path) {
            (Some((pid, start)), Some(path)) => candidates.push(Candidate {
                path: path.clone(),
                what: "bench region",
                creator_pid: pid,
                // 0: the bench could not read its start time; judged by the file's time then.
                creator_start: (start != 0).then_some(start),
                changed: fs::metadata(path).map_or(i64::MAX, |meta| meta.ctime()),
            }),
            _ => not_judged += 1,
        }
    }
    candidates.extend(staging_files());
    let segments = shmkit_segment::stale()
        .map_err(|error| CliError::runtime(format!("cannot look for stale segments: {error}")))?;
    not_judged = not_judged.saturating_sub(segments.len());
    let targets: Vec<Target> =
        candidates.iter().map(|candidate| Target::file(&candidate.path)).collect();
    // An error here, not an empty answer: gc must not take "unknown" for "mapped by nobody".
    let found = usage::scan(&targets)?;
    let mut out =
        GcOutput { dry_run: args.dry_run, removed: Vec::new(), kept: Vec::new(), not_judged };
    for (candidate, target) in candidates.iter().zip(&targets) {
        let mappers = found.get(target).map(|usage| usage.pids.clone()).unwrap_or_default();
        let entry = |reason: String| GcEntry {
            path: candidate.path.display().to_string(),
            what: candidate.what,
            creator_pid: candidate.creator_pid,
            reason,
            error: None,
        };
        if creator_alive(candidate) {
            out.kept.push(entry(format!("its creator, pid {}, is alive", candidate.creator_pid)));
        } else if !mappers.is_empty() {
            let pids: Vec<String> = mappers.iter().map(u32::to_string).collect();
            out.kept.push(entry(format!("mapped by pid {}", pids.join(", "))));
        } else {
            let mut entry = entry(format!(
                "its creator, pid {}, is gone and no process maps it",
                candidate.creator_pid
            ));
            if !args.dry_run
                && let Err(error) = fs::remove_file(&candidate.path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                entry.error = Some(error.to_string());
            }
            out.removed.push(entry);
        }
    }
    for segment in &segments {
        let what = "segment";
        let path = match (&segment.path, segment.sysv_key, segment.sysv_id) {
            (Some(path), _, _) => path.display().to_string(),
            (None, Some(key), Some(id)) => format!("{key} (shmid {id})"),
            (None, _, _) => segment.name.to_string(),
        };
        let entry = GcEntry {
            path,
            what,
            creator_pid: segment.creator_pid,
            reason: segment.reason.to_string(),
            error: None,
        };
        if args.dry_run {
            out.removed.push(entry);
            continue;
        }
        // Checked again right before removal: mapped since, or gone, it is kept.
        match segment.remove() {
            Ok(true) => out.removed.push(entry),
            Ok(false) => out.kept.push(GcEntry {
                reason: "no longer stale (mapped since, or gone)".to_owned(),
                ..entry
            }),
            Err(error) => out.removed.push(GcEntry { error: Some(error.to_string()), ..entry }),
        }
    }
    let failed = out.removed.iter().filter(|entry| entry.error.is_some()).count();
    if args.json {
        output::print_json(&out)?;
    } else {
        output::print(&render(&out))?;
    }
    if failed > 0 {
        return Err(CliError::runtime(format!(
            "{failed} stale region(s) could not be removed (see above)"
        )));
    }
    Ok(())
}

fn render(out: &GcOutput) -> String {
    let verb = if out.dry_run { "would remove" } else { "removed" };
    let mut text = String::new();
    for entry in &out.removed {
        let _ = match &entry.error {
            None => writeln!(text, "{verb} {} ({}): {}", entry.path, entry.what, entry.reason),
            Some(error) => {
                writeln!(text, "could not remove {} ({}): {error}", entry.path, entry.what)
            }
        };
    }
    for entry in &out.kept {
        let _ = writeln!(text, "kept {} ({}): {}", entry.path, entry.what, entry.reason);
    }
    if out.removed.is_empty() {
        text.push_str("nothing stale to remove\n");
    }
    let _ = writeln!(
        text,
        "left alone: {} other region(s), not made by shmkit or with no creator recorded (`shmkit create` regions are removed with `shmkit rm`)",
        out.not_judged
    );
    text
}
