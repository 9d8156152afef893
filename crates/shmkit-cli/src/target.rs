//! The regions of this host as the commands see them, and finding the one a command names.
//!
//! The list is `shmkit_os::list::list_all()`: every file in `/dev/shm`, on shmkit's hugetlbfs
//! mounts and on any other hugetlbfs mount (such as `/dev/hugepages`), and every System V segment.

use std::fmt::Write as _;

use shmkit_name::{Name, PageSize};
use shmkit_os::list::{ListedRegion, RegionKind};
use shmkit_os::sysv::SysvKey;

use crate::args::{KindArg, Selector, parse_sysv_key};
use crate::error::{CliError, Result};

/// One region of the host.
#[derive(Clone, Debug)]
pub struct HostRegion {
    /// What `shmkit-os` says of it.
    pub listed: ListedRegion,
}

impl HostRegion {
    /// `posix`, `hugetlbfs` or `sysv`.
    pub fn kind_name(&self) -> &'static str {
        match self.listed.kind {
            RegionKind::Posix => "posix",
            RegionKind::Hugetlbfs(_) | RegionKind::ForeignHugetlbfs { .. } => "hugetlbfs",
            RegionKind::SysV { .. } => "sysv",
        }
    }

    /// The page size in bytes, where known (a hugetlbfs mount's page size may be one shmkit has no
    /// [`PageSize`] for, like 64 KiB on arm64).
    pub fn page_size_bytes(&self) -> Option<u64> {
        match self.listed.kind {
            RegionKind::ForeignHugetlbfs { page_size_bytes } => Some(page_size_bytes),
            _ => self.listed.page_size.map(|size| size.bytes() as u64),
        }
    }

    /// The System V id, for a segment.
    pub fn sysv_id(&self) -> Option<i32> {
        match self.listed.kind {
            RegionKind::SysV { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The System V key, for a segment that has one.
    pub fn sysv_key(&self) -> Option<SysvKey> {
        match self.listed.kind {
            RegionKind::SysV { key, .. } => key,
            _ => None,
        }
    }

    /// How people name it in messages: the path, or the key and id.
    pub fn label(&self) -> String {
        match (&self.listed.path, self.listed.kind) {
            (Some(path), _) => path.display().to_string(),
            (None, RegionKind::SysV { key: Some(key), id }) => format!("{key} (shmid {id})"),
            (None, RegionKind::SysV { key: None, id }) => {
                format!("private SysV segment (shmid {id})")
            }
            (None, _) => self.listed.name.clone(),
        }
    }

    /// The page size, as shmkit names it.
    pub fn page_size(&self) -> Option<PageSize> {
        self.listed.page_size
    }
}

/// Every region of the host, sorted: POSIX, shmkit's hugetlbfs mounts, other hugetlbfs mounts,
/// System V.
pub fn host_regions() -> Result<Vec<HostRegion>> {
    Ok(shmkit_os::list::list_all()?.into_iter().map(|listed| HostRegion { listed }).collect())
}

/// Whether `region` is what `selector` names (its kind and page size filters included).
fn matches(region: &HostRegion, selector: &Selector) -> bool {
    if let Some(kind) = selector.kind {
        let is_sysv = region.sysv_id().is_some();
        if (kind == KindArg::Sysv) != is_sysv {
            return false;
        }
    }
    if let Some(page_size) = selector.page_size
        && region.sysv_id().is_none()
        && region.page_size() != Some(page_size)
    {
        return false;
    }
    if let Some(id) = selector.id {
        return region.sysv_id() == Some(id);
    }
    let Some(name) = selector.name.as_deref() else { return false };
    if region.sysv_id().is_some() {
        let key = region.sysv_key();
        // A key as `ipcs` writes it, or the key a shmkit name derives.
        key.is_some()
            && (parse_sysv_key(name).ok() == key
                || Name::new(name).ok().map(|name| SysvKey::of(&name)) == key)
    } else {
        region.listed.name == name
    }
}

/// The one region `selector` names: none is a runtime error (exit 1), several a usage error asking
/// for `--page-size` or `--kind` (exit 2).
pub fn find(selector: &Selector) -> Result<HostRegion> {
    let mut found: Vec<HostRegion> =
        host_regions()?.into_iter().filter(|region| matches(region, selector)).collect();
    let what = selector.name.as_deref().map_or_else(
        || format!("SysV shmid {}", selector.id.unwrap_or_default()),
        |name| format!("\"{}\"", name.escape_debug()),
    );
    match found.len() {
        0 => Err(CliError::runtime(format!(
            "no region {what}{}: `shmkit ls` lists the regions of this host",
            filters(selector)
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(CliError::usage(format!(
            "{what} names {} regions ({}): choose one with --page-size or --kind",
            found.len(),
            found.iter().map(HostRegion::label).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn filters(selector: &Selector) -> String {
    let mut out = String::new();
    if let Some(page_size) = selector.page_size {
        let _ = write!(out, " with {page_size} pages");
    }
    match selector.kind {
        Some(KindArg::Sysv) => out.push_str(" among System V segments"),
        Some(KindArg::File) => out.push_str(" among files"),
        None => {}
    }
    out
}
