//! `shmkit bench`: creates a region holding the rings to measure, and for each ring starts a
//! consumer process, streams the messages, and reads back what the consumer measured; then the
//! same messages through a Unix socket to a consumer process, as the baseline.
//!
//! Each transport runs two phases with the same consumer:
//! - **throughput**: `--messages` messages as fast as the producer can send them; the rate is
//!   messages over the time from the first send to the last arrival (both read from
//!   `CLOCK_MONOTONIC`, which every process shares); one message in 1024 is stamped, and its
//!   one-way latency (queueing included) is reported as the stream latency;
//! - **latency**: then up to 20 000 more, one at a time: each is stamped when sent and sent only
//!   once the previous one was taken, so the latency is the one-way time of a message on an idle
//!   path (a queue's depth would otherwise dominate it).
//!
//! The consumer checks every message of both phases: sequence numbers in order, none lost or
//! repeated, and a check word. Signals (Ctrl-C) and errors still remove the region (the
//! [`BenchRegion`] guard) and stop the consumer (the [`child::ConsumerProcess`] guard).

mod child;
pub mod consumer;
mod cpu;
pub mod layout;
mod message;
mod stats;
mod transport;

use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, Mapping, Region, RegionOptions};
use shmkit_ring::Plain;
use shmkit_ring::broadcast::Broadcast;
use shmkit_ring::bytes::ByteRing;
use shmkit_ring::spsc::SpscRing;

use self::child::{ConsumerProcess, Watch};
use self::layout::{Placed, RingKind};
use self::message::{element_words, encode_bytes, now_ns};
use self::stats::{ConsumerReport, Latency, STREAM_SAMPLE};
use self::transport::{BroadcastSend, BytesSend, RingSender, SpscSend};
use crate::args::{BenchArgs, RingChoice};
use crate::error::{CliError, Result};
use crate::output::{self, Table};
use crate::size::{human, human_byte_rate, human_nanos, human_rate};
use crate::{process, signal};

/// Messages of the throughput phase without `--messages`, at most.
const DEFAULT_MESSAGES: u64 = 1_000_000;
/// Bytes of messages of the throughput phase without `--messages`, at most.
const DEFAULT_BYTES: u64 = 1 << 30;
/// Messages of the latency phase, at most.
const LATENCY_MESSAGES: u64 = 20_000;
/// Bytes each ring aims for: room for a burst, small enough to stay in cache.
const RING_BYTES: usize = 256 * 1024;
/// Messages between progress updates and signal checks while nothing blocks.
const PROGRESS_STEP: u64 = 1 << 16;

/// `shmkit bench --json`.
#[derive(Debug, Serialize)]
pub struct BenchOutput {
    /// Messages of the throughput phase, per transport.
    pub messages: u64,
    /// Messages of the latency phase, per transport.
    pub latency_messages: u64,
    /// Bytes per message.
    pub message_size: u64,
    /// The bench region's page size.
    pub page_size: &'static str,
    /// The bench region (removed when the bench ends).
    pub region: String,
    /// The CPU the producer ran on, `null` if not pinned.
    pub producer_cpu: Option<usize>,
    /// The CPU the consumers ran on, `null` if not pinned.
    pub consumer_cpu: Option<usize>,
    /// Rings asked for but not measured, and why.
    pub skipped: Vec<String>,
    /// One entry per transport, rings first, the Unix socket last.
    pub results: Vec<TransportResult>,
    /// The whole bench, in seconds.
    pub wall_seconds: f64,
}

/// What one transport did.
#[derive(Debug, Serialize)]
pub struct TransportResult {
    /// `spsc`, `bytes`, `broadcast` or `unix-socket`.
    pub transport: &'static str,
    /// Bytes one message takes in the transport (an element rounded up to a power of two, a
    /// record with its header, or the message itself on the socket).
    pub slot_bytes: u64,
    /// Throughput phase: messages per second.
    pub messages_per_second: f64,
    /// Throughput phase: message bytes per second (`messages_per_second` × message size).
    pub bytes_per_second: f64,
    /// Throughput phase: seconds from the first send to the last arrival.
    pub seconds: f64,
    /// Messages the consumer received and checked (both phases).
    pub checked: u64,
    /// Messages lost to overruns (broadcast; 0 with its credit flow control).
    pub lost: u64,
    /// Latency phase: one-way latency in nanoseconds, one message in flight.
    pub latency_ns: Latency,
    /// Throughput phase: one-way latency in nanoseconds of one message in 1024, which includes
    /// the time spent queued behind the messages before it.
    pub stream_latency_ns: Latency,
}

/// What to run.
#[derive(Debug)]
struct Plan {
    messages: u64,
    latency_messages: u64,
    size: u64,
    rings: Vec<(RingKind, usize)>,
    skipped: Vec<String>,
}

impl Plan {
    fn new(args: &BenchArgs) -> Result<Self> {
        let kinds: &[RingKind] = match args.ring {
            RingChoice::Spsc => &[RingKind::Spsc],
            RingChoice::Bytes => &[RingKind::Bytes],
            RingChoice::Broadcast => &[RingKind::Broadcast],
            RingChoice::All => &[RingKind::Spsc, RingKind::Bytes, RingKind::Broadcast],
        };
        let mut rings = Vec::new();
        let mut skipped = Vec::new();
        for &kind in kinds {
            if kind == RingKind::Bytes {
                rings.push((kind, 0));
                continue;
            }
            match element_words(args.size) {
                Some(words) => rings.push((kind, words)),
                None if args.ring == RingChoice::All => skipped.push(format!(
                    "{}: its elements are at most 4 KiB, the messages are {} bytes",
                    kind.name(),
                    args.size
                )),
                None => {
                    return Err(CliError::usage(format!(
                        "--size {} is too large for the {} ring, whose elements are at most 4K: use --ring bytes",
                        args.size,
                        kind.name()
                    )));
                }
            }
        }
        // By default a million messages, but at most 1 GiB of them, so that large messages
        // finish in seconds too.
        let messages = args
            .messages
            .unwrap_or_else(|| (DEFAULT_BYTES / args.size).clamp(1000, DEFAULT_MESSAGES));
        Ok(Self {
            messages,
            latency_messages: messages.min(LATENCY_MESSAGES),
            size: args.size,
            rings,
            skipped,
        })
    }

    fn total(&self) -> u64 {
        self.messages + self.latency_messages
    }
}

/// The bench region: created with the rings in it, removed on drop (error, signal or success).
#[derive(Debug)]
pub struct BenchRegion {
    name: Name,
    page_size: PageSize,
    path: PathBuf,
    placed: Vec<Placed>,
    mapping: Mapping,
}

impl Drop for BenchRegion {
    fn drop(&mut self) {
        let _ = shmkit_os::unlink(&self.name, self.page_size);
    }
}

/// Slots of an element ring of `T`: [`RING_BYTES`] worth, at least 64.
fn slots<T: Plain>() -> usize {
    (RING_BYTES / size_of::<T>()).max(64)
}

fn spsc_sizes<T: Plain>() -> std::result::Result<(usize, usize), shmkit_ring::Error> {
    let capacity = slots::<T>();
    Ok((capacity, SpscRing::<T>::bytes_for(capacity)?))
}

fn broadcast_sizes<T: Plain>() -> std::result::Result<(usize, usize), shmkit_ring::Error> {
    let capacity = slots::<T>();
    Ok((capacity, Broadcast::<T>::bytes_for(capacity, layout::BROADCAST_FLOW)?))
}

/// Capacity and bytes of a ring.
fn sizes(kind: RingKind, words: usize, size: u64) -> Result<(usize, usize)> {
    let ring_error =
        |error: shmkit_ring::Error| CliError::runtime(format!("{} ring: {error}", kind.name()));
    macro_rules! by_words {
        ($f:ident, $($w:literal)*) => {
            match words {
                $($w => $f::<[u64; $w]>(), )*
                _ => return Err(CliError::runtime(format!("no element ring of {words} words"))),
            }
        };
    }
    match kind {
        RingKind::Spsc => by_words!(spsc_sizes, 2 4 8 16 32 64 128 256 512).map_err(ring_error),
        RingKind::Broadcast => {
            by_words!(broadcast_sizes, 2 4 8 16 32 64 128 256 512).map_err(ring_error)
        }
        RingKind::Bytes => {
            let size = usize::try_from(size)
                .map_err(|_| CliError::usage(format!("--size {size} is too large")))?;
            let capacity =
                RING_BYTES.max(ByteRing::record_size(size).saturating_mul(4).next_power_of_two());
            Ok((capacity, ByteRing::bytes_for(capacity).map_err(ring_error)?))
        }
    }
}

impl BenchRegion {
    /// Creates `shmkit-bench-PID-N` with the control block and every ring of `plan`.
    fn create(plan: &Plan, page_size: PageSize) -> Result<Self> {
        let mut placed = Vec::new();
        let mut capacities = Vec::new();
        let mut end = layout::CONTROL_SIZE;
        for &(kind, words) in &plan.rings {
            let (capacity, len) = sizes(kind, words, plan.size)?;
            placed.push(Placed { kind, offset: end, len, message_size: plan.size });
            capacities.push(capacity);
            end = end.checked_add(len.next_multiple_of(4096)).ok_or_else(|| {
                CliError::usage("the rings do not fit in memory: use a smaller --size")
            })?;
        }
        let pages = (end as u64).div_ceil(page_size.bytes() as u64);
        let creator_start = process::start_time(std::process::id()).unwrap_or(0);
        let mut attempt = 0;
        let name = loop {
            let name =
                Name::new(&format!("{}{}-{attempt}", layout::NAME_PREFIX, std::process::id()))
                    .map_err(|error| CliError::runtime(format!("bench region name: {error}")))?;
            match RegionOptions::new().page_size(page_size).create(&name, pages) {
                Ok(_) => break name,
                // A region of a dead process that had our pid: `shmkit gc` removes those.
                Err(shmkit_os::Error::AlreadyExists { .. }) if attempt < 100 => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        };
        // From here the guard removes the region whatever happens.
        let region = Region::open(&name, Some(page_size), Access::ReadWrite);
        let mapping = match region.and_then(|region| region.map(&MapOptions::new())) {
            Ok(mapping) => mapping,
            Err(error) => {
                let _ = shmkit_os::unlink(&name, page_size);
                return Err(error.into());
            }
        };
        let region =
            Self { name, page_size, path: shmkit_os::path_of(&name, page_size), placed, mapping };
        for ((&(kind, words), &at), &capacity) in
            plan.rings.iter().zip(&region.placed).zip(&capacities)
        {
            macro_rules! init {
                ($f:ident, $($w:literal)*) => {
                    match words {
                        $($w => layout::$f::<[u64; $w]>(&region.mapping, at, capacity)?, )*
                        _ => return Err(CliError::runtime(format!("no element ring of {words} words"))),
                    }
                };
            }
            match kind {
                RingKind::Spsc => init!(init_spsc, 2 4 8 16 32 64 128 256 512),
                RingKind::Broadcast => init!(init_broadcast, 2 4 8 16 32 64 128 256 512),
                RingKind::Bytes => layout::init_bytes(&region.mapping, at, capacity)?,
            }
        }
        layout::write_control(&region.mapping, creator_start, &region.placed)?;
        Ok(region)
    }
}

/// The progress bar, drawn only on a terminal.
#[derive(Debug)]
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new(total: u64, show: bool) -> Self {
        if !show {
            return Self(None);
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>11} [{bar:30}] {percent:>3}% {human_pos}/{human_len} messages, {elapsed}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(Some(bar))
    }

    fn transport(&self, name: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(name.to_owned());
        }
    }

    fn add(&self, messages: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(messages);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The consumer's command line.
fn consumer_args(
    kind: &str,
    plan: &Plan,
    cpu: Option<usize>,
    ring: Option<(&BenchRegion, Placed)>,
) -> Vec<String> {
    let mut args = vec![
        format!("--kind={kind}"),
        format!("--size={}", plan.size),
        format!("--messages={}", plan.messages),
        format!("--latency-messages={}", plan.latency_messages),
    ];
    if let Some(cpu) = cpu {
        args.push(format!("--cpu={cpu}"));
    }
    if let Some((region, placed)) = ring {
        args.push(format!("--region={}", region.name));
        args.push(format!("--page-size={}", region.page_size));
        args.push(format!("--offset={}", placed.offset));
        args.push(format!("--len={}", placed.len));
    }
    args
}

/// Waits for the consumer's `ready`.
fn await_ready(child: &mut ConsumerProcess) -> Result<()> {
    match child.next_line()?.as_str() {
        "ready" => Ok(()),
        other => Err(CliError::runtime(format!("the consumer said {other:?} instead of ready"))),
    }
}

/// Reads the consumer's report and waits for it to exit.
fn await_report(mut child: ConsumerProcess) -> Result<ConsumerReport> {
    let line = child.next_line()?;
    let report = serde_json::from_str(&line).map_err(|error| {
        CliError::runtime(format!("the consumer's report {line:?} does not parse: {error}"))
    })?;
    child.finish()?;
    Ok(report)
}

/// The producer of a ring: both phases. Returns when the first message was sent.
fn produce<S: RingSender>(
    sender: &mut S,
    plan: &Plan,
    watch: &mut Watch<'_>,
    progress: &Progress,
) -> Result<u64> {
    let start = now_ns();
    for seq in 0..plan.messages {
        let sent = if seq.is_multiple_of(STREAM_SAMPLE) { now_ns() } else { 0 };
        // A full ring: back off between attempts, because each failed attempt reloads the
        // consumer's position and pulls its cache line away from it.
        let mut backoff = shmkit_sync::Backoff::new();
        while !sender.try_send(seq, sent)? {
            backoff.snooze();
            watch.spin()?;
        }
        if (seq + 1).is_multiple_of(PROGRESS_STEP) {
            progress.add(PROGRESS_STEP);
            watch.moved();
            watch.child().check()?;
        }
    }
    progress.add(plan.messages % PROGRESS_STEP);
    while !sender.drained()? {
        watch.spin()?;
    }
    for index in 0..plan.latency_messages {
        let sent = now_ns();
        while !sender.try_send(plan.messages + index, sent)? {
            watch.spin()?;
        }
        while !sender.drained()? {
            watch.spin()?;
        }
        watch.moved();
    }
    progress.add(plan.latency_messages);
    Ok(start)
}

/// Measures one ring.
fn run_ring(
    region: &BenchRegion,
    placed: Placed,
    words: usize,
    plan: &Plan,
    cpu: Option<usize>,
    progress: &Progress,
) -> Result<TransportResult> {
    let kind = placed.kind;
    progress.transport(kind.name());
    let mut child = ConsumerProcess::spawn(
        kind.name(),
        &consumer_args(kind.name(), plan, cpu, Some((region, placed))),
        Stdio::null(),
    )?;
    await_ready(&mut child)?;
    let mapping = &region.mapping;
    let start = {
        let mut watch = Watch::new(&mut child);
        macro_rules! element_ring {
            ($sender:ident, $attach:ident, $($w:literal)*) => {
                match words {
                    $($w => produce(&mut $sender::<$w>(layout::$attach(mapping, placed)?), plan, &mut watch, progress)?,)*
                    _ => return Err(CliError::runtime(format!("no element ring of {words} words"))),
                }
            };
        }
        match kind {
            RingKind::Spsc => element_ring!(SpscSend, spsc_producer, 2 4 8 16 32 64 128 256 512),
            RingKind::Broadcast => {
                element_ring!(BroadcastSend, broadcast_producer, 2 4 8 16 32 64 128 256 512)
            }
            RingKind::Bytes => {
                let size = usize::try_from(plan.size)
                    .map_err(|_| CliError::usage("message size too large"))?;
                let producer = layout::bytes_producer(mapping, placed)?;
                produce(
                    &mut BytesSend { producer, buffer: vec![0; size] },
                    plan,
                    &mut watch,
                    progress,
                )?
            }
        }
    };
    let report = await_report(child)?;
    let slot_bytes = match kind {
        RingKind::Bytes => {
            ByteRing::record_size(usize::try_from(plan.size).unwrap_or(usize::MAX)) as u64
        }
        RingKind::Spsc | RingKind::Broadcast => words as u64 * 8,
    };
    Ok(result(kind.name(), slot_bytes, plan, start, &report))
}

/// Writes all of `bytes`, polling for signals and the consumer while the socket is full.
fn write_all(stream: &mut UnixStream, mut bytes: &[u8], watch: &mut Watch<'_>) -> Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(CliError::runtime("the socket consumer closed the socket")),
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(error) if is_timeout(&error) => watch.child().check()?,
            Err(error) => return Err(CliError::runtime(format!("socket write: {error}"))),
        }
    }
    Ok(())
}

/// Reads the consumer's one-byte acknowledgement.
fn read_ack(stream: &mut UnixStream, watch: &mut Watch<'_>) -> Result<()> {
    let mut ack = [0; 1];
    loop {
        match stream.read(&mut ack) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(CliError::runtime("the socket consumer closed the socket")),
            Err(error) if is_timeout(&error) => watch.child().check()?,
            Err(error) => return Err(CliError::runtime(format!("socket read: {error}"))),
        }
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// The baseline: the same messages through a Unix stream socket, one `write` each.
fn run_socket(plan: &Plan, cpu: Option<usize>, progress: &Progress) -> Result<TransportResult> {
    progress.transport("unix socket");
    let (mut stream, theirs) = UnixStream::pair()?;
    let mut child = ConsumerProcess::spawn(
        "unix socket",
        &consumer_args("socket", plan, cpu, None),
        Stdio::from(OwnedFd::from(theirs)),
    )?;
    await_ready(&mut child)?;
    // Short timeouts, so that a blocked call comes back to look for signals and the consumer.
    stream.set_write_timeout(Some(Duration::from_millis(100)))?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let size = usize::try_from(plan.size).map_err(|_| CliError::usage("message size too large"))?;
    let mut buffer = vec![0; size];
    let start = {
        let mut watch = Watch::new(&mut child);
        let start = now_ns();
        for seq in 0..plan.messages {
            let sent = if seq.is_multiple_of(STREAM_SAMPLE) { now_ns() } else { 0 };
            encode_bytes(&mut buffer, seq, sent);
            write_all(&mut stream, &buffer, &mut watch)?;
            if (seq + 1).is_multiple_of(PROGRESS_STEP) {
                progress.add(PROGRESS_STEP);
                watch.child().check()?;
            }
        }
        progress.add(plan.messages % PROGRESS_STEP);
        read_ack(&mut stream, &mut watch)?;
        for index in 0..plan.latency_messages {
            encode_bytes(&mut buffer, plan.messages + index, now_ns());
            write_all(&mut stream, &buffer, &mut watch)?;
            read_ack(&mut stream, &mut watch)?;
        }
        progress.add(plan.latency_messages);
        start
    };
    let report = await_report(child)?;
    Ok(result("unix-socket", plan.size, plan, start, &report))
}

fn result(
    transport: &'static str,
    slot_bytes: u64,
    plan: &Plan,
    start: u64,
    report: &ConsumerReport,
) -> TransportResult {
    #[allow(clippy::cast_precision_loss, reason = "rates for people and JSON")]
    let (seconds, messages, size) = (
        report.stream_end_ns.saturating_sub(start).max(1) as f64 / 1e9,
        plan.messages as f64,
        plan.size as f64,
    );
    TransportResult {
        transport,
        slot_bytes,
        messages_per_second: messages / seconds,
        bytes_per_second: messages * size / seconds,
        seconds,
        checked: report.received,
        lost: report.lost,
        latency_ns: report.latency,
        stream_latency_ns: report.stream_latency,
    }
}

/// Runs `shmkit bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    let plan = Plan::new(args)?;
    signal::install().map_err(|error| {
        CliError::runtime(format!("cannot install the Ctrl-C handler: {error}"))
    })?;
    let cpus = cpu::plan().filter(|&(producer, _)| cpu::pin(producer).is_ok());
    let region = BenchRegion::create(&plan, args.page_size)?;
    let transports = plan.rings.len() as u64 + 1;
    let progress =
        Progress::new(transports * plan.total(), !args.json && std::io::stdout().is_terminal());
    let consumer_cpu = cpus.map(|(_, consumer)| consumer);
    let mut results = Vec::new();
    for (&(_, words), &placed) in plan.rings.iter().zip(&region.placed) {
        results.push(run_ring(&region, placed, words, &plan, consumer_cpu, &progress)?);
    }
    results.push(run_socket(&plan, consumer_cpu, &progress)?);
    progress.finish();
    let out = BenchOutput {
        messages: plan.messages,
        latency_messages: plan.latency_messages,
        message_size: plan.size,
        page_size: args.page_size.name(),
        region: region.path.display().to_string(),
        producer_cpu: cpus.map(|(producer, _)| producer),
        consumer_cpu,
        skipped: plan.skipped,
        results,
        wall_seconds: 0.0,
    };
    drop(region);
    let out = BenchOutput { wall_seconds: started.elapsed().as_secs_f64(), ..out };
    if args.json {
        return output::print_json(&out);
    }
    output::print(&render(&out))
}

fn render(out: &BenchOutput) -> String {
    let cpus = match (out.producer_cpu, out.consumer_cpu) {
        (Some(producer), Some(consumer)) => {
            format!("producer on CPU {producer}, consumers on CPU {consumer}")
        }
        _ => "one CPU: producer and consumers share it".to_owned(),
    };
    let mut text = format!(
        "shmkit bench: {} messages of {} per transport, {} pages ({}), {cpus}\n\n",
        out.messages,
        human(out.message_size),
        out.page_size,
        out.region
    );
    let mut table =
        Table::new(&["TRANSPORT", "MESSAGES/S", "BYTES/S", "P50", "P99", "P99.9", "MAX"])
            .right_align(&[1, 2, 3, 4, 5, 6]);
    for result in &out.results {
        table.row(vec![
            result.transport.to_owned(),
            human_rate(result.messages_per_second),
            human_byte_rate(result.bytes_per_second),
            human_nanos(result.latency_ns.p50),
            human_nanos(result.latency_ns.p99),
            human_nanos(result.latency_ns.p999),
            human_nanos(result.latency_ns.max),
        ]);
    }
    text.push_str(&table.render());
    let checked = out.results.first().map_or(0, |result| result.checked);
    let _ = write!(
        text,
        "\nthroughput: {} messages streamed; latency: one-way, over {} messages sent one at a time.\n\
         every message checked ({checked} per transport): in order, none lost, none damaged.\n",
        out.messages, out.latency_messages
    );
    for skipped in &out.skipped {
        let _ = writeln!(text, "skipped {skipped}");
    }
    let _ = writeln!(text, "wall time {:.1} s", out.wall_seconds);
    text
}
