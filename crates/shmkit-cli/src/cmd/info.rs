//! `shmkit info NAME`: one region in detail, with the processes that map it.

use std::time::SystemTime;

use serde::Serialize;
use shmkit_os::list::usage;

use crate::args::InfoArgs;
use crate::cmd::ls::{RegionRow, placement_text, row, scan_target};
use crate::cmd::ring_stat;
use crate::error::Result;
use crate::output::{self, fields};
use crate::size::human;
use crate::target;
use crate::users::Users;

/// `shmkit info --json`: the `ls` fields and these.
#[derive(Debug, Serialize)]
pub struct InfoOutput {
    /// Every field of an `ls` row.
    #[serde(flatten)]
    pub region: RegionRow,
    /// Whole pages, when the page size is known and divides the size.
    pub page_count: Option<u64>,
    /// The processes found mapping it, with their command names.
    pub processes: Vec<Process>,
    /// What the kernel says of a System V segment; `null` for files.
    pub sysv: Option<SysvDetails>,
    /// What shmkit recognises at its start (`"shmkit bench region"`, `"shmkit spsc ring"`, ...), or
    /// `null`.
    pub contents: Option<String>,
}

/// A process mapping the region.
#[derive(Debug, Serialize)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`), `null` if it exited meanwhile.
    pub command: Option<String>,
}

/// `IPC_STAT` of a System V segment.
#[derive(Debug, Serialize)]
pub struct SysvDetails {
    /// The creator's pid.
    pub creator_pid: u32,
    /// The last process to attach or detach.
    pub last_pid: u32,
    /// Attachments, in every process.
    pub attach_count: u64,
    /// Removed, gone when the last attachment is.
    pub marked_for_removal: bool,
    /// Locked in memory (`SHM_LOCK`).
    pub locked: bool,
    /// The creator's uid.
    pub creator_uid: u32,
    /// Last attach, seconds since the epoch, or `null`.
    pub attach_time: Option<u64>,
    /// Last detach, seconds since the epoch, or `null`.
    pub detach_time: Option<u64>,
    /// Creation or last change, seconds since the epoch, or `null`.
    pub change_time: Option<u64>,
}

fn seconds(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|since| since.as_secs())
}

/// Runs `shmkit info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    let region = target::find(&args.selector)?;
    let scan_for = scan_target(&region);
    let found = usage::scan(scan_for.as_slice())?;
    let usage = scan_for.as_ref().and_then(|target| found.get(target));
    let users = Users::read();
    let region_row = row(&region, usage, &users);
    let page_count = region_row
        .page_size_bytes
        .filter(|&page| page > 0 && region_row.size.is_multiple_of(page))
        .map(|page| region_row.size / page);
    let processes = region_row
        .mapper_pids
        .iter()
        .map(|&pid| Process {
            pid,
            command: std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .map(|text| text.trim_end().to_owned()),
        })
        .collect();
    let sysv = match region.sysv_id() {
        Some(id) => {
            let stat = shmkit_os::sysv::stat_id(id)?;
            Some(SysvDetails {
                creator_pid: stat.creator_pid,
                last_pid: stat.last_pid,
                attach_count: stat.attach_count,
                marked_for_removal: stat.marked_for_removal,
                locked: stat.locked,
                creator_uid: stat.cuid,
                attach_time: seconds(stat.attach_time),
                detach_time: seconds(stat.detach_time),
                change_time: seconds(stat.change_time),
            })
        }
        None => None,
    };
    let contents = region.listed.path.as_deref().and_then(ring_stat::recognise);
    let info = InfoOutput { region: region_row, page_count, processes, sysv, contents };
    if args.json {
        return output::print_json(&info);
    }
    output::print(&render(&info, &users))
}

fn render(info: &InfoOutput, users: &Users) -> String {
    let region = &info.region;
    let mut pairs = vec![("name", region.name.clone()), ("kind", region.kind.to_owned())];
    if let Some(path) = &region.path {
        pairs.push(("path", path.clone()));
    }
    if let Some(id) = region.sysv_id {
        pairs.push(("sysv id", id.to_string()));
        pairs.push(("sysv key", region.sysv_key.clone().unwrap_or_else(|| "private".to_owned())));
    }
    pairs.push(("size", format!("{} ({} bytes)", human(region.size), region.size)));
    let page = match (region.page_size, region.page_size_bytes) {
        (Some(name), Some(bytes)) => format!("{name} ({})", human(bytes)),
        (None, Some(bytes)) => human(bytes),
        _ => "unknown".to_owned(),
    };
    pairs.push(("page size", page));
    if let Some(count) = info.page_count {
        pairs.push(("pages", count.to_string()));
    }
    pairs.push(("mode", region.mode.clone()));
    pairs.push((
        "owner",
        format!("{} (uid {}), group {}", users.display(region.uid), region.uid, region.gid),
    ));
    pairs.push(("mappers", region.mappers.to_string()));
    let processes: Vec<String> = info
        .processes
        .iter()
        .map(|process| {
            format!("{} ({})", process.pid, process.command.as_deref().unwrap_or("exited"))
        })
        .collect();
    pairs.push((
        "mapped by",
        if processes.is_empty() { "-".to_owned() } else { processes.join(", ") },
    ));
    pairs.push(("numa", placement_text(region.placement.as_deref())));
    if let Some(sysv) = &info.sysv {
        pairs.push(("creator pid", sysv.creator_pid.to_string()));
        pairs.push(("last pid", sysv.last_pid.to_string()));
        pairs.push((
            "removed",
            if sysv.marked_for_removal { "yes (gone at the last detach)" } else { "no" }.to_owned(),
        ));
        pairs.push(("locked", if sysv.locked { "yes" } else { "no" }.to_owned()));
    }
    if let Some(contents) = &info.contents {
        pairs.push(("contents", contents.clone()));
    }
    fields(&pairs)
}
