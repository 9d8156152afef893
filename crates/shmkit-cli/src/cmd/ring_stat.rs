//! `shmkit ring stat NAME`: what a shmkit ring in a region says of itself, read without taking
//! part: the region is mapped read-only and nothing is written.
//!
//! The reading is `shmkit_ring::inspect`'s: relaxed atomic loads, which work on a read-only
//! mapping, with the header (magic, publication state, kind, layout version, capacity, sizes
//! within the region) and the positions (a fill level within the capacity, credit positions
//! behind the producer) checked as an attach checks them, in the layouts of the `shmkit-ring`
//! this shmkit links; a ring of another layout version is reported, not read. This module finds
//! the rings of a region, tells whether the processes holding their roles are alive, and shows
//! what they said.
#![allow(
    unsafe_code,
    reason = "shmkit-ring's inspect::snapshot takes a raw pointer into the mapping"
)]

use std::fs::File;
use std::mem::offset_of;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr::NonNull;

use serde::Serialize;
use shmkit_os::{Access, MapOptions, Mapping, Region};
use shmkit_ring::broadcast::Flow;
use shmkit_ring::header::{self, Header, Kind};
use shmkit_ring::inspect::{self, Detail};

use crate::args::RingStatArgs;
use crate::cmd::bench::layout::{self as bench, RingKind};
use crate::error::{CliError, Result};
use crate::output::{self, fields};

/// `shmkit ring stat --json`.
#[derive(Debug, Serialize)]
pub struct RingStatOutput {
    /// The region's file.
    pub region: String,
    /// Every ring read.
    pub rings: Vec<RingStat>,
}

/// One ring.
#[derive(Debug, Serialize)]
pub struct RingStat {
    /// Its offset in the region.
    pub offset: u64,
    /// `spsc`, `bytes` or `broadcast`.
    pub kind: &'static str,
    /// Its layout version.
    pub version: u32,
    /// Elements (SPSC), data bytes (bytes) or slots (broadcast).
    pub capacity: u64,
    /// Bytes of one element or message (1 for the byte ring).
    pub element_size: u64,
    /// Bytes of the whole ring.
    pub total_size: u64,
    /// Elements, bytes or messages in the ring now (for broadcast: not yet read by the slowest
    /// credit consumer, `null` without credit consumers).
    pub fill: Option<u64>,
    /// The producer side.
    pub producer: Side,
    /// The consumer side (SPSC and byte rings), else `null`.
    pub consumer: Option<Side>,
    /// Broadcast: `lossy` or `credit`; else `null`.
    pub flow: Option<&'static str>,
    /// Broadcast: messages overwritten so far, which a consumer that had not read them lost
    /// (`max(0, position - capacity)`); else `null`.
    pub overwritten: Option<u64>,
    /// Broadcast: the registered credit consumers.
    pub credit_consumers: Vec<Side>,
}

/// One side of a ring.
#[derive(Debug, Serialize)]
pub struct Side {
    /// Its position: elements, bytes or messages ever written (producer) or read (consumer).
    pub position: u64,
    /// The pid holding the role, `null` while free.
    pub owner_pid: Option<u32>,
    /// Whether that process is alive, `null` while free.
    pub owner_alive: Option<bool>,
    /// A credit consumer: messages it has not read yet, against the producer's position loaded
    /// right after its own (not in the JSON, where the positions say it).
    #[serde(skip)]
    pub behind: Option<u64>,
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Side {
    fn new(position: u64, owner: Option<NonZeroU32>) -> Self {
        let pid = owner.map(NonZeroU32::get);
        Self { position, owner_pid: pid, owner_alive: pid.map(alive), behind: None }
    }
}

/// Reads and checks the ring at `offset`.
fn stat(mapping: &Mapping, offset: usize, label: &str) -> Result<RingStat> {
    let what = format!("the ring at offset {offset} of {label}");
    let corrupted = |reason: &dyn std::fmt::Display| CliError::runtime(format!("{what}: {reason}"));
    let room = mapping.len().checked_sub(offset).filter(|&room| room >= size_of::<Header>());
    let ptr = NonNull::new(mapping.as_ptr().wrapping_add(offset));
    let (Some(room), Some(ptr)) = (room, ptr) else {
        return Err(corrupted(&"no room for a ring header there"));
    };
    // SAFETY: `room` bytes from `offset` are inside the mapping, which outlives the snapshot;
    // the other processes access them only through shmkit-ring (or atomically).
    let snapshot = unsafe { inspect::snapshot(ptr, room) }.map_err(|error| match error {
        shmkit_ring::Error::NotPublished { .. }
        | shmkit_ring::Error::Placement { .. }
        | shmkit_ring::Error::Corrupted { field: "state" | "magic", .. } => CliError::runtime(
            format!(
                "{what} holds no published shmkit ring (no SHMKRING header ready there); name the offset with --offset"
            ),
        ),
        shmkit_ring::Error::UnknownVersion { kind, version, .. } => match ring_kind(kind) {
            Some(kind) => CliError::runtime(format!(
                "{what} is a {} ring of layout version {version}, which this shmkit does not know: use the shmkit that made it",
                kind.name()
            )),
            None => not_a_ring(&what),
        },
        other => corrupted(&other),
    })?;
    let Some(kind) = ring_kind(snapshot.kind) else { return Err(not_a_ring(&what)) };
    let producer = snapshot.producer().map(|side| Side::new(side.position, side.owner));
    let Some(producer) = producer else { return Err(not_a_ring(&what)) };
    let mut stat = RingStat {
        offset: offset as u64,
        kind: kind.name(),
        version: snapshot.version,
        capacity: snapshot.capacity,
        element_size: snapshot.element_size,
        total_size: snapshot.total_size,
        fill: snapshot.fill(),
        producer,
        consumer: snapshot.consumer().map(|side| Side::new(side.position, side.owner)),
        flow: None,
        overwritten: None,
        credit_consumers: Vec::new(),
    };
    if let Detail::Broadcast(broadcast) = &snapshot.detail {
        stat.flow = Some(match broadcast.flow {
            Flow::Lossy => "lossy",
            Flow::Credit { .. } => "credit",
        });
        stat.overwritten = Some(broadcast.overwritten);
        for consumer in broadcast.credit_consumers() {
            let consumer = consumer.map_err(|error| corrupted(&error))?;
            let side = Side::new(consumer.position, Some(consumer.owner));
            stat.credit_consumers.push(Side { behind: Some(consumer.behind), ..side });
        }
    }
    Ok(stat)
}

/// The ring kind of a primitive's kind: `None` for the seqlock.
fn ring_kind(kind: Kind) -> Option<RingKind> {
    RingKind::from_u64(kind as u64)
}

fn not_a_ring(what: &str) -> CliError {
    CliError::runtime(format!("{what} is a seqlock, not a ring"))
}

/// A word of a bench region's control block. The block is written once, before its magic (stored
/// last): one read of its bytes is the word.
fn control_word(mapping: &Mapping, offset: usize) -> Result<u64> {
    let mut bytes = [0; 8];
    mapping.read_at(offset, &mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// The rings of a bench region, from its control block (checked against the region's size).
fn bench_rings(mapping: &Mapping, label: &str) -> Result<Vec<usize>> {
    let word = |offset: usize| control_word(mapping, offset);
    let count = word(bench::OFFSET_RING_COUNT)?;
    if count > bench::MAX_RINGS as u64 {
        return Err(CliError::runtime(format!(
            "{label}: its bench control block lists {count} rings, at most {}",
            bench::MAX_RINGS
        )));
    }
    let mut offsets = Vec::new();
    for index in 0..count as usize {
        let offset = word(bench::OFFSET_RINGS + index * 32 + 8)?;
        let offset = usize::try_from(offset)
            .ok()
            .filter(|&offset| offset < mapping.len())
            .ok_or_else(|| {
                CliError::runtime(format!(
                    "{label}: ring {index} of its control block is at {offset}, past its end"
                ))
            })?;
        offsets.push(offset);
    }
    Ok(offsets)
}

/// What shmkit recognises at the start of the file at `path` (read with `pread`, which neither
/// maps nor allocates), for `shmkit info`.
pub fn recognise(path: &Path) -> Option<String> {
    let mut start = [0_u8; size_of::<Header>()];
    File::open(path).ok()?.read_exact_at(&mut start, 0).ok()?;
    let word = |at: usize| {
        start.get(at..at + 8).and_then(|bytes| bytes.try_into().ok()).map(u64::from_le_bytes)
    };
    let half = |at: usize| {
        start.get(at..at + 4).and_then(|bytes| bytes.try_into().ok()).map(u32::from_le_bytes)
    };
    match word(0)? {
        bench::MAGIC => Some(format!(
            "shmkit bench region of pid {} ({} rings; `shmkit ring stat` reads them)",
            word(bench::OFFSET_CREATOR_PID)?,
            word(bench::OFFSET_RING_COUNT)?
        )),
        header::MAGIC => {
            let kind = match Kind::from_u32(half(offset_of!(Header, kind))?) {
                Some(Kind::Spsc) => "spsc ring",
                Some(Kind::Bytes) => "byte ring",
                Some(Kind::Broadcast) => "broadcast ring",
                Some(Kind::SeqLock) => "seqlock",
                None => "primitive of an unknown kind",
            };
            let state = half(offset_of!(Header, state))?;
            let state = if state == header::STATE_READY { "" } else { " (not published)" };
            Some(format!("shmkit {kind}{state}"))
        }
        _ => None,
    }
}

/// Runs `shmkit ring stat`.
pub fn run(args: &RingStatArgs) -> Result<()> {
    let region = Region::open(&args.name, args.page_size, Access::ReadOnly)?;
    let label = region.info().path.display().to_string();
    let mapping = region.map(&MapOptions::new().access(Access::ReadOnly))?;
    let offsets = match args.offset {
        Some(offset) => vec![
            usize::try_from(offset)
                .map_err(|_| CliError::usage(format!("--offset {offset} is too large")))?,
        ],
        None if control_word(&mapping, bench::OFFSET_MAGIC)? == bench::MAGIC => {
            bench_rings(&mapping, &label)?
        }
        None => vec![0],
    };
    let rings = offsets
        .into_iter()
        .map(|offset| stat(&mapping, offset, &label))
        .collect::<Result<Vec<_>>>()?;
    let out = RingStatOutput { region: label, rings };
    if args.json {
        return output::print_json(&out);
    }
    output::print(&render(&out))
}

fn side_text(side: &Side) -> String {
    let owner = match (side.owner_pid, side.owner_alive) {
        (Some(pid), Some(true)) => format!("held by pid {pid}"),
        (Some(pid), _) => format!("held by pid {pid}, which is gone"),
        (None, _) => "free".to_owned(),
    };
    format!("position {}, {owner}", side.position)
}

fn render(out: &RingStatOutput) -> String {
    let mut text = String::new();
    for (index, ring) in out.rings.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        let unit = match ring.kind {
            "bytes" => "bytes".to_owned(),
            _ => format!("elements of {} bytes", ring.element_size),
        };
        let mut pairs = vec![
            (
                "ring",
                format!(
                    "{} at offset {} of {} (layout version {})",
                    ring.kind, ring.offset, out.region, ring.version
                ),
            ),
            ("capacity", format!("{} {unit}", ring.capacity)),
        ];
        #[allow(clippy::cast_precision_loss, reason = "a percentage for people")]
        let fill = ring.fill.map_or_else(
            || "unknown (no credit consumer)".to_owned(),
            |fill| format!("{fill} ({:.1}%)", fill as f64 * 100.0 / ring.capacity as f64),
        );
        pairs.push(("fill", fill));
        pairs.push(("producer", side_text(&ring.producer)));
        if let Some(consumer) = &ring.consumer {
            pairs.push(("consumer", side_text(consumer)));
        }
        if let Some(flow) = ring.flow {
            pairs.push(("flow", flow.to_owned()));
        }
        if let Some(overwritten) = ring.overwritten {
            pairs.push((
                "overwritten",
                format!("{overwritten} messages (lost by any consumer that had not read them)"),
            ));
        }
        for consumer in &ring.credit_consumers {
            let behind = consumer
                .behind
                .unwrap_or_else(|| ring.producer.position.saturating_sub(consumer.position));
            pairs.push(("credit consumer", format!("{}, {behind} behind", side_text(consumer))));
        }
        text.push_str(&fields(&pairs));
    }
    text
}
