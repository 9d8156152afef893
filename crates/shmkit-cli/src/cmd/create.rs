//! `shmkit create NAME`: a region in /dev/shm or on hugetlbfs (`shmkit_os::RegionOptions`), or a
//! System V segment (`shmkit_os::sysv::SysvSegment`).

use shmkit_os::sysv::{SysvKey, SysvSegment};
use shmkit_os::{Placement, RegionOptions};

use crate::args::{CreateArgs, KindArg};
use crate::error::{CliError, Result};
use crate::output::{self, octal_mode};
use crate::size::human;

/// Pages for `--size` bytes (rounded up), or `--page-count`.
fn page_count(args: &CreateArgs) -> Result<u64> {
    let page = args.page_size.bytes() as u64;
    match (args.size, args.page_count) {
        (_, Some(count)) => Ok(count),
        (Some(0), None) => Err(CliError::usage("invalid size 0: a region has at least one page")),
        (Some(size), None) => Ok(size.div_ceil(page)),
        (None, None) => Err(CliError::usage("give --size BYTES or --page-count N")),
    }
}

/// Runs `shmkit create`.
pub fn run(args: &CreateArgs) -> Result<()> {
    let pages = page_count(args)?;
    let page = args.page_size.bytes() as u64;
    let rounded = args
        .size
        .filter(|size| !size.is_multiple_of(page))
        .map(|size| format!(" (--size {size} rounded up to whole {} pages)", args.page_size));
    match args.kind {
        KindArg::File => {
            if args.key.is_some() {
                return Err(CliError::usage(
                    "--key is for --kind sysv; a file region is named by NAME",
                ));
            }
            let placement = match (&args.cpus, args.node) {
                (Some(cpus), _) => Placement::Cpus(cpus.clone()),
                (None, Some(node)) => Placement::Node(node),
                (None, None) => Placement::Anywhere,
            };
            let info = RegionOptions::new()
                .page_size(args.page_size)
                .placement(placement)
                .mode(args.mode)
                .create(&args.name, pages)?;
            output::print(&format!(
                "created {}: {} {} page{} ({}), mode {}{}\n",
                info.path.display(),
                info.page_count,
                info.page_size,
                if info.page_count == 1 { "" } else { "s" },
                human(info.size),
                octal_mode(info.mode),
                rounded.unwrap_or_default()
            ))
        }
        KindArg::Sysv => {
            if args.cpus.is_some() || args.node.is_some() {
                return Err(CliError::usage(
                    "--cpus and --node are for file regions: a System V segment is placed by the policy of whoever first touches its pages",
                ));
            }
            let key = args.key.unwrap_or_else(|| SysvKey::of(&args.name));
            let size = pages
                .checked_mul(page)
                .and_then(|size| usize::try_from(size).ok())
                .ok_or_else(|| {
                    CliError::usage(format!(
                        "{pages} {} pages are too many for this machine",
                        args.page_size
                    ))
                })?;
            let segment = SysvSegment::create(key, size, args.page_size, args.mode)?;
            output::print(&format!(
                "created System V segment 0x{:08x} (shmid {}): {pages} {} page{} ({}), mode {}{}\n",
                key.get().cast_unsigned(),
                segment.id(),
                args.page_size,
                if pages == 1 { "" } else { "s" },
                human(size as u64),
                octal_mode(args.mode),
                rounded.unwrap_or_default()
            ))
        }
    }
}
