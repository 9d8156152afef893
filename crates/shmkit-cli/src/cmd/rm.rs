//! `shmkit rm NAME`: removes one region (`shm_unlink`/`unlink`, or `IPC_RMID`).

use shmkit_os::list::{RegionKind, usage};

use crate::args::RmArgs;
use crate::cmd::ls::scan_target;
use crate::error::{CliError, Result};
use crate::output;
use crate::target;

/// Runs `shmkit rm`.
pub fn run(args: &RmArgs) -> Result<()> {
    let region = target::find(&args.selector)?;
    let label = region.label();
    // Said after removal: the memory stays until these processes unmap it.
    let mappers = match region.listed.attach_count {
        Some(count) => count,
        // Only said, not acted on: a `/proc` that cannot be read counts nobody.
        None => scan_target(&region).map_or(0, |target| {
            let found = usage::scan(std::slice::from_ref(&target)).ok();
            found
                .and_then(|mut found| found.remove(&target))
                .map_or(0, |usage| usage.pids.len() as u64)
        }),
    };
    match (
        region.listed.kind,
        region.listed.region_name,
        region.listed.page_size,
        &region.listed.path,
    ) {
        (RegionKind::SysV { id, .. }, _, _, _) => shmkit_os::sysv::remove_id(id)?,
        // A shmkit name where shmkit keeps regions: through shmkit-os (shm_unlink for /dev/shm).
        (RegionKind::Posix | RegionKind::Hugetlbfs(_), Some(name), Some(page_size), Some(path))
            if shmkit_os::path_of(&name, page_size) == *path =>
        {
            shmkit_os::unlink(&name, page_size)?;
        }
        // Any other file (a name shmkit would refuse, another hugetlbfs mount): unlink the path.
        (_, _, _, Some(path)) => std::fs::remove_file(path).map_err(|error| {
            CliError::runtime(format!("cannot remove {}: {error}", path.display()))
        })?,
        (_, _, _, None) => return Err(CliError::runtime(format!("{label} has no path to remove"))),
    }
    let note = if mappers > 0 {
        format!("; {mappers} process(es) still map it, and its memory is freed when they unmap it")
    } else {
        String::new()
    };
    output::print(&format!("removed {label}{note}\n"))
}
