//! `shmkit ring stat NAME`: what a shmkit ring in a region says of itself, read without taking
//! part: the region is mapped read-only and nothing is written.
//!
//! The region's bytes are not trusted: every value is read with an atomic load through the
//! bounds-checked views of `shmkit_os::Mapping`, and checked (magic, publication state, kind,
//! layout version, a power-of-two capacity, sizes within the region, a fill level within the
//! capacity) before it is shown. The positions are those of the layouts `shmkit-ring` documents
//! (the `LAYOUT_VERSION` of each ring this shmkit links); a ring of another layout version is
//! reported, not read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;
use shmkit_os::{Access, MapOptions, Mapping, Region};

use crate::args::RingStatArgs;
use crate::cmd::bench::layout::{self as bench, RingKind};
use crate::error::{CliError, Result};
use crate::output::{self, fields};

/// `b"SHMKRING"` as a little-endian u64: the first word of every `shmkit-ring` primitive.
const RING_MAGIC: u64 = shmkit_ring::header::MAGIC;
/// The header's state once published.
const STATE_READY: u32 = shmkit_ring::header::STATE_READY;
/// The seqlock's kind number in the header (the other kinds are [`RingKind`]'s).
const KIND_SEQLOCK: u32 = 4;

/// Header offsets (`shmkit_ring::Header`).
mod header {
    pub(super) const VERSION: usize = 8;
    pub(super) const KIND: usize = 12;
    pub(super) const CAPACITY: usize = 16;
    pub(super) const ELEMENT_SIZE: usize = 24;
    pub(super) const TOTAL_SIZE: usize = 32;
    pub(super) const STATE: usize = 40;
}

/// The producer's line (position, owner) and the consumer's line, in the SPSC and byte rings; the
/// producer's line and the credit table in the broadcast ring (the same in SPSC layout versions 1
/// and 2, and in version 1 of the others).
mod lines {
    pub(super) const PRODUCER_POSITION: usize = 128;
    pub(super) const PRODUCER_OWNER: usize = 136;
    pub(super) const CONSUMER_POSITION: usize = 256;
    pub(super) const CONSUMER_OWNER: usize = 264;
    pub(super) const BROADCAST_FLOW: usize = 140;
    pub(super) const BROADCAST_CREDIT_SLOTS: usize = 144;
    pub(super) const BROADCAST_SLOT_STRIDE: usize = 148;
    pub(super) const BROADCAST_CREDIT_TABLE: usize = 384;
    pub(super) const CREDIT_SLOT: usize = 128;
    pub(super) const CREDIT_OWNER: usize = 8;
}

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
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The u64 at `offset` of a read-only mapping. `Mapping` has atomic views only for read-write
/// mappings, and `read_at` loads byte by byte, so a word the peer is changing could be read torn:
/// it is read until two reads in a row agree (positions only grow, so a torn read does not repeat).
fn load_u64(mapping: &Mapping, offset: usize) -> Result<u64> {
    let mut bytes = [0; 8];
    mapping.read_at(offset, &mut bytes)?;
    let mut value = u64::from_le_bytes(bytes);
    for _ in 0..16 {
        mapping.read_at(offset, &mut bytes)?;
        let again = u64::from_le_bytes(bytes);
        if again == value {
            break;
        }
        value = again;
    }
    Ok(value)
}

/// A read-only view of a ring at `base` in `mapping`: every load is bounds-checked.
struct View<'m> {
    mapping: &'m Mapping,
    base: usize,
    what: String,
}

impl View<'_> {
    fn u64(&self, offset: usize) -> Result<u64> {
        let at =
            self.base.checked_add(offset).ok_or_else(|| self.corrupted("an offset overflows"))?;
        load_u64(self.mapping, at)
    }

    fn u32(&self, offset: usize) -> Result<u32> {
        let at =
            self.base.checked_add(offset).ok_or_else(|| self.corrupted("an offset overflows"))?;
        let mut bytes = [0; 4];
        self.mapping.read_at(at, &mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn corrupted(&self, reason: &str) -> CliError {
        CliError::runtime(format!("{}: {reason}", self.what))
    }

    fn side(&self, position: usize, owner: usize) -> Result<Side> {
        let owner = self.u32(owner)?;
        Ok(Side {
            position: self.u64(position)?,
            owner_pid: (owner != 0).then_some(owner),
            owner_alive: (owner != 0).then(|| alive(owner)),
        })
    }
}

/// Reads and checks the ring at `offset`.
fn stat(mapping: &Mapping, offset: usize, label: &str) -> Result<RingStat> {
    let view =
        View { mapping, base: offset, what: format!("the ring at offset {offset} of {label}") };
    if offset.checked_add(128).is_none_or(|end| end > mapping.len()) {
        return Err(view.corrupted("no room for a ring header there"));
    }
    if view.u32(header::STATE)? != STATE_READY || view.u64(0)? != RING_MAGIC {
        return Err(CliError::runtime(format!(
            "{} holds no published shmkit ring (no SHMKRING header ready there); name the offset with --offset",
            view.what
        )));
    }
    let kind_number = view.u32(header::KIND)?;
    let kind = match RingKind::from_u64(u64::from(kind_number)) {
        Some(kind) => kind,
        None if kind_number == KIND_SEQLOCK => {
            return Err(CliError::runtime(format!("{} is a seqlock, not a ring", view.what)));
        }
        None => return Err(view.corrupted(&format!("unknown kind {kind_number}"))),
    };
    let version = view.u32(header::VERSION)?;
    let known = match kind {
        RingKind::Spsc => shmkit_ring::spsc::LAYOUT_VERSION,
        RingKind::Bytes => shmkit_ring::bytes::LAYOUT_VERSION,
        RingKind::Broadcast => shmkit_ring::broadcast::LAYOUT_VERSION,
    };
    if version != known {
        return Err(CliError::runtime(format!(
            "{} is a {} ring of layout version {version}, which this shmkit does not know: use the shmkit that made it",
            view.what,
            kind.name()
        )));
    }
    let capacity = view.u64(header::CAPACITY)?;
    let element_size = view.u64(header::ELEMENT_SIZE)?;
    let total_size = view.u64(header::TOTAL_SIZE)?;
    if !capacity.is_power_of_two() {
        return Err(view.corrupted(&format!("its capacity {capacity} is not a power of two")));
    }
    if total_size > (mapping.len() - offset) as u64 {
        return Err(
            view.corrupted(&format!("its size {total_size} runs past the end of the region"))
        );
    }
    let mut stat = RingStat {
        offset: offset as u64,
        kind: kind.name(),
        version,
        capacity,
        element_size,
        total_size,
        fill: None,
        producer: view.side(lines::PRODUCER_POSITION, lines::PRODUCER_OWNER)?,
        consumer: None,
        flow: None,
        overwritten: None,
        credit_consumers: Vec::new(),
    };
    match kind {
        RingKind::Spsc | RingKind::Bytes => {
            let consumer = view.side(lines::CONSUMER_POSITION, lines::CONSUMER_OWNER)?;
            let fill = stat.producer.position.wrapping_sub(consumer.position);
            if fill > capacity {
                return Err(view.corrupted(&format!(
                    "producer position {} and consumer position {} are {fill} apart, more than the capacity {capacity}",
                    stat.producer.position, consumer.position
                )));
            }
            stat.fill = Some(fill);
            stat.consumer = Some(consumer);
        }
        RingKind::Broadcast => broadcast(&view, &mut stat)?,
    }
    Ok(stat)
}

fn broadcast(view: &View<'_>, stat: &mut RingStat) -> Result<()> {
    let flow = view.u32(lines::BROADCAST_FLOW)?;
    let slots = view.u32(lines::BROADCAST_CREDIT_SLOTS)?;
    let stride = u64::from(view.u32(lines::BROADCAST_SLOT_STRIDE)?);
    stat.flow = Some(match flow {
        0 => "lossy",
        1 => "credit",
        other => return Err(view.corrupted(&format!("unknown flow {other}"))),
    });
    // The table and the slots must fit in the size the header gives (checked against the region).
    let table = u64::from(slots) * lines::CREDIT_SLOT as u64;
    let needed = (lines::BROADCAST_CREDIT_TABLE as u64 + table)
        .checked_add(stat.capacity.saturating_mul(stride));
    if needed.is_none_or(|needed| needed > stat.total_size) || (flow == 0 && slots != 0) {
        return Err(view.corrupted(&format!(
            "{slots} credit slots and {} slots of {stride} bytes do not fit its {} bytes",
            stat.capacity, stat.total_size
        )));
    }
    let next = stat.producer.position;
    stat.overwritten = Some(next.saturating_sub(stat.capacity));
    for index in 0..slots as usize {
        let at = lines::BROADCAST_CREDIT_TABLE + index * lines::CREDIT_SLOT;
        let side = view.side(at, at + lines::CREDIT_OWNER)?;
        if side.owner_pid.is_none() {
            continue;
        }
        if side.position > next {
            return Err(view.corrupted(&format!(
                "a credit consumer is at {}, past the producer's {next}",
                side.position
            )));
        }
        stat.credit_consumers.push(side);
    }
    stat.fill = stat.credit_consumers.iter().map(|side| next - side.position).max();
    Ok(())
}

/// The rings of a bench region, from its control block (checked against the region's size).
fn bench_rings(mapping: &Mapping, label: &str) -> Result<Vec<usize>> {
    let word = |offset: usize| load_u64(mapping, offset);
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
    let mut start = [0_u8; 48];
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
        RING_MAGIC => {
            let kind = match half(header::KIND)? {
                1 => "spsc ring",
                2 => "byte ring",
                3 => "broadcast ring",
                KIND_SEQLOCK => "seqlock",
                _ => "primitive of an unknown kind",
            };
            let state = if half(header::STATE)? == STATE_READY { "" } else { " (not published)" };
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
        None if load_u64(&mapping, 0)? == bench::MAGIC => bench_rings(&mapping, &label)?,
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
            pairs.push((
                "credit consumer",
                format!(
                    "{}, {} behind",
                    side_text(consumer),
                    ring.producer.position - consumer.position
                ),
            ));
        }
        text.push_str(&fields(&pairs));
    }
    text
}
