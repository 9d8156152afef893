//! `cargo xtask setup-hugepages`: reserves 2 MiB and 1 GiB pages on each NUMA node and mounts
//! hugetlbfs where shmkit looks for it (`BASE/.huge`, `BASE/.gigantic`), or checks or undoes that.
//!
//! The work is split so that what to do is decided without root: [`state`] reads the machine into
//! plain values, [`plan`] turns them and the request into a list of actions (a pure function, unit
//! tested on made-up states), and [`apply`] carries the actions out or prints them (`--dry-run`).

mod apply;
mod holders;
mod options;
mod plan;
mod state;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cmd::Error;
use options::{Command, Options};
use plan::{Action, Request};
use state::{Roots, State};

/// The `--help` text; `main.rs` gives the one-line summary.
pub(crate) const USAGE: &str = "\
usage: cargo xtask setup-hugepages [OPTIONS]

Reserves huge (2 MiB) and gigantic (1 GiB) pages on every NUMA node with memory and mounts
hugetlbfs at BASE/.huge (pagesize=2M) and BASE/.gigantic (pagesize=1G), where BASE is $SHMKIT_PATH
or /mnt/.shmkit. Counts are only raised, never lowered: other users may rely on a reservation.
A second run changes nothing. Needs root, except with --check or --dry-run.

options:
  --huge N        2 MiB pages wanted on each node (default 32, i.e. 64 MiB); 0: leave them alone
  --gigantic N    1 GiB pages wanted on each node (default 1); 0: leave them alone. A kernel
                  without 1 GiB pages is reported and skipped
  --node K        only NUMA node K (default: every node with memory)
  --mode OCTAL    mode of the mount roots (default 1777: anyone may create a region, as in /tmp,
                  and each region file keeps the mode its creator gives it)
  --uid N         owner of the mount roots (default: the effective uid)
  --gid N         group of the mount roots (default: the effective gid)
  --check         print the pages and mounts; exit 1 if short of the counts or a mount is missing
  --teardown      unmount both mounts and set the pages back to 0 (on --node K only, if given);
                  a busy mount names the processes using it and no page is released
  --dry-run       print every write and mount instead of doing it
  -h, --help      this text

exit status: 0 done (or nothing to do), 1 failed or check found a problem, 2 usage error";

/// Where the mounts live unless `SHMKIT_PATH` says otherwise (as in `shmkit-name`).
const DEFAULT_BASE: &str = "/mnt/.shmkit";

/// The environment variable that moves the mounts (as in `shmkit-name`).
const BASE_ENV: &str = "SHMKIT_PATH";

/// One of the two hugetlbfs page sizes this command manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageKind {
    /// 2 MiB pages, mounted at `BASE/.huge`.
    Huge,
    /// 1 GiB pages, mounted at `BASE/.gigantic`.
    Gigantic,
}

impl PageKind {
    /// Both kinds, in the order they are reported and set up.
    pub(crate) const ALL: [Self; 2] = [Self::Huge, Self::Gigantic];

    /// The page size in KiB, as sysfs spells it in `hugepages-<N>kB`.
    pub(crate) const fn kib(self) -> u64 {
        match self {
            Self::Huge => 2048,
            Self::Gigantic => 1_048_576,
        }
    }

    /// The sysfs folder of this size's pool, under a node's `hugepages/` or `/sys/kernel/mm/hugepages/`.
    pub(crate) fn sysfs_dir(self) -> String {
        format!("hugepages-{}kB", self.kib())
    }

    /// The mount's folder under BASE.
    pub(crate) const fn mount_dir(self) -> &'static str {
        match self {
            Self::Huge => ".huge",
            Self::Gigantic => ".gigantic",
        }
    }

    /// The `pagesize=` mount option.
    pub(crate) const fn pagesize_option(self) -> &'static str {
        match self {
            Self::Huge => "2M",
            Self::Gigantic => "1G",
        }
    }
}

impl fmt::Display for PageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Huge => "huge",
            Self::Gigantic => "gigantic",
        })
    }
}

/// Where a pool of pages lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Node {
    /// NUMA node K (`/sys/devices/system/node/nodeK`).
    Numa(u32),
    /// The whole system, on a kernel without NUMA node folders (`/sys/kernel/mm/hugepages`).
    System,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Numa(node) => write!(f, "node {node}"),
            Self::System => f.write_str("system"),
        }
    }
}

/// `cargo xtask setup-hugepages ARGS`, with its own exit codes: a usage error is 2, not 1.
pub(crate) fn main(args: &[String]) -> ExitCode {
    let options = match options::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("xtask setup-hugepages: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the machine, checks the prerequisites, then checks, plans or carries out the command.
fn run(options: &Options) -> Result<(), Error> {
    let roots = Roots::system();
    let base = base_dir()?;
    let state = state::observe(&roots, &base)?;
    let euid = apply::effective_uid();
    let needs_root = options.command != Command::Check && !options.dry_run;
    let mut missing = Vec::new();
    if !state.hugetlbfs {
        missing.push(
            "this kernel has no hugetlbfs (`hugetlbfs` is not in /proc/filesystems): it needs \
             CONFIG_HUGETLBFS=y"
                .to_owned(),
        );
    }
    if needs_root && euid != 0 {
        missing.push(format!(
            "setup-hugepages needs root to write /sys and mount hugetlbfs (effective uid is {euid}): \
             run it as root, or use --check or --dry-run to look without changing anything"
        ));
    }
    if !missing.is_empty() {
        return Err(Error::Message(missing.join("\n")));
    }

    let request = Request {
        huge: options.huge,
        gigantic: options.gigantic,
        node: options.node,
        base: base.clone(),
        mount: plan::MountOptions {
            mode: options.mode,
            uid: options.uid.unwrap_or(euid),
            gid: options.gid.unwrap_or_else(apply::effective_gid),
        },
    };
    match options.command {
        Command::Check => check(&state, &request),
        Command::Setup => {
            let plan = plan::setup(&state, &request).map_err(|lines| problems(&lines))?;
            for note in &plan.notes {
                println!("note: {note}");
            }
            if plan.actions.is_empty() {
                println!("nothing to do: {}", plan::describe_setup(&state, &request));
                return Ok(());
            }
            apply::execute(&plan.actions, options.dry_run)
        }
        Command::Teardown => {
            let plan = plan::teardown(&state, &request).map_err(|lines| problems(&lines))?;
            if plan.actions.is_empty() {
                println!("nothing to do: {}", plan::describe_teardown(&state, &request));
                return Ok(());
            }
            apply::execute(&plan.actions, options.dry_run)
        }
    }
}

/// `--check`: the state as found, then what a setup would still have to do, as problems.
fn check(state: &State, request: &Request) -> Result<(), Error> {
    for line in state::report(state, &request.base) {
        println!("{line}");
    }
    let mut problems: Vec<String> = Vec::new();
    match plan::setup(state, request) {
        Ok(plan) => {
            for note in &plan.notes {
                println!("note: {note}");
            }
            problems.extend(plan.actions.iter().filter_map(Action::shortfall));
        }
        Err(errors) => problems.extend(errors),
    }
    if problems.is_empty() {
        println!("check: ok ({})", plan::describe_setup(state, request));
        return Ok(());
    }
    for problem in &problems {
        println!("missing: {problem}");
    }
    Err(Error::Message(format!(
        "setup-hugepages --check: {} problem(s); `cargo xtask setup-hugepages` fixes them",
        problems.len()
    )))
}

/// Several problems found while planning, as one error, one per line.
fn problems(lines: &[String]) -> Error {
    Error::Message(lines.join("\n"))
}

/// BASE: `$SHMKIT_PATH` or `/mnt/.shmkit`, made absolute and, when it exists, free of symlinks,
/// because the kernel lists mount points that way in `/proc/self/mounts`.
fn base_dir() -> Result<PathBuf, Error> {
    let base = std::env::var_os(BASE_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_BASE), PathBuf::from);
    let base = if base.is_absolute() {
        base
    } else {
        std::env::current_dir()
            .map_err(|e| Error::Message(format!("cannot resolve {BASE_ENV}: {e}")))?
            .join(base)
    };
    Ok(if base.exists() { canonical(&base)? } else { base })
}

/// `fs::canonicalize` with the path in the error.
fn canonical(path: &Path) -> Result<PathBuf, Error> {
    std::fs::canonicalize(path).map_err(|e| Error::Message(format!("{}: {e}", path.display())))
}

/// Helpers shared by the unit tests of the submodules.
#[cfg(test)]
mod testing {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A folder under the system temp folder, unique per process and call, removed on drop.
    #[derive(Debug)]
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        /// A new empty folder whose name contains `label`.
        pub(crate) fn new(label: &str) -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("xtask-hugepages-{label}-{}-{unique}", std::process::id()));
            fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
            Self(path)
        }

        /// The folder.
        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `text` to `relative` under the folder, creating its parents.
        pub(crate) fn write(&self, relative: &str, text: &str) {
            let path = self.0.join(relative);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
            }
            fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
