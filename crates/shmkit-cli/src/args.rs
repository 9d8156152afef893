//! The command line, as clap reads it. Values are parsed and checked here (sizes, names, page
//! sizes, modes, CPU lists), so a bad one is a usage error (exit 2) that names it before anything
//! is done.

use clap::{Args, Parser, Subcommand, ValueEnum};
use shmkit_name::{Name, PageSize};
use shmkit_os::numa::CpuList;
use shmkit_os::sysv::SysvKey;

use crate::size::parse_size;

/// See and clean up shared memory on this host, and measure shmkit's rings.
#[derive(Debug, Parser)]
#[command(name = "shmkit", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Exit codes: 0 success, 1 runtime error, 2 usage error. See docs/cli.md.")]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream messages through shmkit rings to a consumer process, check every one, and print
    /// throughput and one-way latency beside a Unix-socket baseline.
    Bench(BenchArgs),
    /// List every shared memory region on the host: POSIX (/dev/shm), hugetlbfs, System V.
    Ls(LsArgs),
    /// Show one region in detail, with the processes that map it.
    Info(InfoArgs),
    /// Create a region: a file in /dev/shm or on hugetlbfs, or a System V segment.
    Create(CreateArgs),
    /// Remove a region (processes that map it keep their mapping until they unmap it).
    Rm(RmArgs),
    /// Remove stale regions shmkit made (creator gone, no process maps them).
    Gc(GcArgs),
    /// Show NUMA nodes, their CPUs and huge page pools, and the hugetlbfs mounts.
    Numa(NumaArgs),
    /// Inspect shmkit rings.
    Ring {
        /// What to do with the ring.
        #[command(subcommand)]
        command: RingCommand,
    },
    /// The consumer process of `shmkit bench` (started by it, not by people).
    #[command(name = "__bench-consumer", hide = true)]
    BenchConsumer(crate::cmd::bench::consumer::ConsumerArgs),
}

/// `shmkit ring ...`.
#[derive(Debug, Subcommand)]
pub enum RingCommand {
    /// Show a ring's kind, capacity, fill, producer and consumer positions and overruns.
    Stat(RingStatArgs),
}

/// Which rings `bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RingChoice {
    /// The SPSC element ring (fixed-size messages).
    Spsc,
    /// The byte ring (variable-length records).
    Bytes,
    /// The broadcast ring (one producer, consumers that may be overrun).
    Broadcast,
    /// Every ring.
    All,
}

/// `shmkit bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The rings to measure.
    #[arg(long, value_enum, default_value_t = RingChoice::All)]
    pub ring: RingChoice,
    /// Messages per transport [default: 1000000, fewer for messages over 1K: at most 1 GiB of
    /// messages per transport].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: Option<u64>,
    /// Bytes per message, at least 16 (a sequence number and a timestamp); suffixes K, M allowed.
    #[arg(long, default_value = "64", value_parser = parse_message_size)]
    pub size: u64,
    /// The pages of the bench region: normal (in /dev/shm, no setup), huge or gigantic.
    #[arg(long, default_value = "normal", value_parser = parse_page_size)]
    pub page_size: PageSize,
    /// Print the results as JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// `shmkit ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Which backend a command addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A file: in /dev/shm (normal pages) or on a hugetlbfs mount (huge, gigantic pages).
    File,
    /// A System V segment (`ipcs -m`), by key (`0x1234abcd`, or derived from a name) or `--id`.
    Sysv,
}

/// How `info` and `rm` name a region.
#[derive(Debug, Args)]
pub struct Selector {
    /// The region: a file name in /dev/shm or a hugetlbfs mount, or a System V key (`0x1234abcd`,
    /// or the name a key was derived from).
    #[arg(required_unless_present = "id")]
    pub name: Option<String>,
    /// A System V segment by its id (the `shmid` column of `ipcs -m`).
    #[arg(long, conflicts_with_all = ["name", "page_size"])]
    pub id: Option<i32>,
    /// Only a region with pages of this size (normal, huge, gigantic).
    #[arg(long, value_parser = parse_page_size)]
    pub page_size: Option<PageSize>,
    /// Only a file or only a System V segment.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

/// `shmkit info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Which region.
    #[command(flatten)]
    pub selector: Selector,
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// `shmkit create`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("amount").required(true).args(["size", "page_count"])))]
pub struct CreateArgs {
    /// The region's name: 1 to 39 of A-Z a-z 0-9 _ . -, starting with a letter or digit.
    #[arg(value_parser = parse_name)]
    pub name: Name,
    /// Its size in bytes (suffixes K, M, G, T), rounded up to whole pages.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    /// Its size in pages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_count: Option<u64>,
    /// Its page size: normal (4 KiB, /dev/shm), huge (2 MiB) or gigantic (1 GiB).
    #[arg(long, default_value = "normal", value_parser = parse_page_size)]
    pub page_size: PageSize,
    /// Split it into one part per CPU of this list, each on that CPU's NUMA node
    /// (syntax `0-4:2,10,9-11`).
    #[arg(long, value_parser = parse_cpu_list, conflicts_with = "node")]
    pub cpus: Option<CpuList>,
    /// Put every page on this NUMA node.
    #[arg(long)]
    pub node: Option<u32>,
    /// Permission bits, in octal (`600`, `0640`).
    #[arg(long, default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// A file (the default) or a System V segment.
    #[arg(long, value_enum, default_value_t = KindArg::File)]
    pub kind: KindArg,
    /// The System V key (`0x1234abcd`); the default is derived from the name.
    #[arg(long, value_parser = parse_sysv_key)]
    pub key: Option<SysvKey>,
}

/// `shmkit rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Which region.
    #[command(flatten)]
    pub selector: Selector,
}

/// `shmkit gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// `shmkit numa`.
#[derive(Debug, Args)]
pub struct NumaArgs {
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// `shmkit ring stat`.
#[derive(Debug, Args)]
pub struct RingStatArgs {
    /// The region holding the ring.
    #[arg(value_parser = parse_name)]
    pub name: Name,
    /// Its page size, if the name exists with more than one.
    #[arg(long, value_parser = parse_page_size)]
    pub page_size: Option<PageSize>,
    /// The ring's offset in the region, in bytes (suffixes allowed); by default every ring found
    /// in a region made by `shmkit bench`, else the ring at offset 0.
    #[arg(long, value_parser = parse_size)]
    pub offset: Option<u64>,
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// A region name, with what names may be when refused.
pub fn parse_name(text: &str) -> Result<Name, String> {
    Name::new(text).map_err(|error| {
        format!(
            "invalid region name \"{}\": {error}; names are 1 to 39 of A-Z a-z 0-9 _ . -, starting with a letter or digit",
            text.escape_debug()
        )
    })
}

/// A page size: `normal`, `huge`, `gigantic`, `4K`, `2M`, `1G` or the bytes.
pub fn parse_page_size(text: &str) -> Result<PageSize, String> {
    text.parse::<PageSize>().map_err(|error| error.to_string())
}

fn parse_message_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if !(16..=1 << 20).contains(&size) {
        return Err(format!(
            "message size {text} is out of range: use 16 bytes (a sequence number and a timestamp) to 1M"
        ));
    }
    Ok(size)
}

fn parse_cpu_list(text: &str) -> Result<CpuList, String> {
    let list: CpuList = text.parse().map_err(|error: shmkit_os::Error| error.to_string())?;
    if list.is_empty() {
        return Err("empty CPU list: name at least one CPU, like 0-3 or 0,2".to_owned());
    }
    Ok(list)
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && !digits.starts_with('+') && mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "invalid mode \"{}\": use octal permission bits up to 777, like 600 or 0640",
            text.escape_debug()
        )),
    }
}

/// A System V key: hex with `0x` (as `ipcs` shows it) or decimal; not 0.
pub fn parse_sysv_key(text: &str) -> Result<SysvKey, String> {
    let bad = || {
        format!(
            "invalid SysV key \"{}\": use a non-zero 32-bit key, like 0x1234abcd (as `ipcs -m` shows it)",
            text.escape_debug()
        )
    };
    let raw = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).map_err(|_| bad())?,
        None => text.parse::<u32>().map_err(|_| bad())?,
    };
    SysvKey::new(raw.cast_signed()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_keys_and_names() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("0o644"), Ok(0o644));
        assert!(parse_mode("800").is_err());
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("").is_err());
        assert_eq!(parse_sysv_key("0x10").map(SysvKey::get), Ok(16));
        assert_eq!(parse_sysv_key("0xffffffff").map(SysvKey::get), Ok(-1));
        assert!(parse_sysv_key("0").is_err());
        assert!(parse_sysv_key("0xg").is_err());
        assert!(parse_name("a/b").is_err_and(|error| error.contains("\"a/b\"")));
        assert!(parse_message_size("8").is_err());
        assert_eq!(parse_message_size("1K"), Ok(1024));
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
