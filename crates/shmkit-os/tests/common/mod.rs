//! Helpers shared by the backend tests: unique names, cleanup guards, child processes (this test
//! binary re-executed), huge-page prerequisites, `/proc/self/smaps` and `ipcs -m`.
#![allow(dead_code, unused_imports, reason = "each test binary uses a part of the helpers")]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

pub(crate) use shmkit_testkit::{
    ChildProcess, RegionGuard, SysvGuard, TempPath, child_env, child_role, free_huge_pages,
    huge_pages_ready, hugetlbfs_ready, tell_parent, unique, unique_name, wait_for_parent,
};

/// One mapping of `/proc/self/smaps`: its range, permissions and the `Key: value` fields.
#[derive(Debug)]
pub(crate) struct Vma {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) perms: String,
    pub(crate) path: String,
    pub(crate) fields: HashMap<String, String>,
}

impl Vma {
    /// A field in kB (`KernelPageSize`, `Rss`, `Locked`, ...).
    pub(crate) fn kib(&self, field: &str) -> Option<u64> {
        self.fields.get(field)?.strip_suffix(" kB")?.trim().parse().ok()
    }
}

/// The mapping of this process that holds `address`, from `/proc/self/smaps`.
pub(crate) fn vma_at(address: usize) -> Option<Vma> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut current: Option<Vma> = None;
    for line in smaps.lines() {
        let mut words = line.split_ascii_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
        {
            if let Some(vma) = current.take()
                && (vma.start..vma.end).contains(&address)
            {
                return Some(vma);
            }
            let perms = words.next().unwrap_or("").to_owned();
            let path = words.skip(3).collect::<Vec<_>>().join(" ");
            current = Some(Vma { start, end, perms, path, fields: HashMap::new() });
        } else if let Some((key, value)) = line.split_once(':')
            && let Some(vma) = current.as_mut()
        {
            vma.fields.insert(key.to_owned(), value.trim().to_owned());
        }
    }
    current.filter(|vma| (vma.start..vma.end).contains(&address))
}

/// One row of `ipcs -m`: key, shmid, owner, perms, bytes, nattch, status.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IpcsRow {
    pub(crate) key: String,
    pub(crate) id: i32,
    pub(crate) perms: String,
    pub(crate) bytes: u64,
    pub(crate) attach_count: u64,
    pub(crate) status: String,
}

/// The rows of `ipcs -m` (util-linux), the tool people use to see System V segments.
pub(crate) fn ipcs() -> Vec<IpcsRow> {
    let output = Command::new("ipcs").arg("-m").output().expect("ipcs -m runs (util-linux)");
    assert!(output.status.success(), "ipcs -m failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("0x"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            Some(IpcsRow {
                key: (*fields.first()?).to_owned(),
                id: fields.get(1)?.parse().ok()?,
                perms: (*fields.get(3)?).to_owned(),
                bytes: fields.get(4)?.parse().ok()?,
                attach_count: fields.get(5)?.parse().ok()?,
                status: fields.get(6..).map(|rest| rest.join(" ")).unwrap_or_default(),
            })
        })
        .collect()
}

/// The row of `ipcs -m` for segment `id`.
pub(crate) fn ipcs_row(id: i32) -> Option<IpcsRow> {
    ipcs().into_iter().find(|row| row.id == id)
}

/// `/dev/shm/NAME` exists.
pub(crate) fn in_dev_shm(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}
