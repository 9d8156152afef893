//! The consumer process of `shmkit bench` (`shmkit __bench-consumer`, hidden): attaches to one
//! ring of the bench region (or reads the socket on its stdin), says `ready`, receives every
//! message, checks it, measures the latency phase, and prints a [`ConsumerReport`] as one JSON
//! line. Its parent's death kills it (`PR_SET_PDEATHSIG`), so it never outlives a bench.

use std::io::{BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use clap::{Args, ValueEnum};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, Region};

use super::child::CHILD_TIMEOUT;
use super::layout::{self, Placed, RingKind};
use super::message::{decode_bytes, element_words, now_ns};
use super::stats::{ConsumerReport, Latency};
use super::transport::{BroadcastReceive, BytesReceive, RingReceiver, SpscReceive};
use crate::args::{parse_name, parse_page_size};
use crate::error::{CliError, Result};

/// What the consumer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConsumerKind {
    /// The SPSC ring.
    Spsc,
    /// The byte ring.
    Bytes,
    /// The broadcast ring (a credit consumer).
    Broadcast,
    /// The Unix socket on stdin.
    Socket,
}

/// `shmkit __bench-consumer`: set by the bench, not by people.
#[derive(Debug, Args)]
pub struct ConsumerArgs {
    /// What to read.
    #[arg(long, value_enum)]
    pub kind: ConsumerKind,
    /// The bench region (not for the socket).
    #[arg(long, value_parser = parse_name)]
    pub region: Option<Name>,
    /// Its page size.
    #[arg(long, value_parser = parse_page_size, default_value = "normal")]
    pub page_size: PageSize,
    /// The ring's offset in the region.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// The ring's bytes.
    #[arg(long, default_value_t = 0)]
    pub len: usize,
    /// Bytes per message.
    #[arg(long)]
    pub size: u64,
    /// Messages of the throughput phase.
    #[arg(long)]
    pub messages: u64,
    /// Messages of the latency phase, after those.
    #[arg(long)]
    pub latency_messages: u64,
    /// The CPU to run on.
    #[arg(long)]
    pub cpu: Option<usize>,
}

/// Runs the consumer.
pub fn run(args: &ConsumerArgs) -> Result<()> {
    // Die with the bench: a consumer left spinning would hold a CPU and the region's memory.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if let Some(cpu) = args.cpu {
        super::cpu::pin(cpu).map_err(|error| {
            CliError::runtime(format!("cannot pin the consumer to CPU {cpu}: {error}"))
        })?;
    }
    let report = match args.kind {
        ConsumerKind::Socket => socket(args)?,
        kind => ring(args, kind)?,
    };
    let line =
        serde_json::to_string(&report).map_err(|error| CliError::runtime(error.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush())?;
    Ok(())
}

/// Says `ready` to the bench.
fn ready() -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready").and_then(|()| stdout.flush())?;
    Ok(())
}

fn ring(args: &ConsumerArgs, kind: ConsumerKind) -> Result<ConsumerReport> {
    let name = args.region.ok_or_else(|| CliError::usage("--region is required for a ring"))?;
    let region = Region::open(&name, Some(args.page_size), Access::ReadWrite)?;
    let mapping = region.map(&MapOptions::new())?;
    let ring_kind = match kind {
        ConsumerKind::Spsc => RingKind::Spsc,
        ConsumerKind::Bytes => RingKind::Bytes,
        ConsumerKind::Broadcast => RingKind::Broadcast,
        ConsumerKind::Socket => return Err(CliError::usage("the socket is not a ring")),
    };
    let placed =
        Placed { kind: ring_kind, offset: args.offset, len: args.len, message_size: args.size };
    if kind == ConsumerKind::Bytes {
        let size =
            usize::try_from(args.size).map_err(|_| CliError::usage("message size too large"))?;
        let consumer = layout::bytes_consumer(&mapping, placed)?;
        let mut receiver = BytesReceive { consumer, buffer: vec![0; size + 8], size };
        ready()?;
        return consume(&mut receiver, args);
    }
    let words = element_words(args.size).ok_or_else(|| {
        CliError::usage(format!("{}-byte messages are too large for an element ring", args.size))
    })?;
    macro_rules! element_ring {
        ($($w:literal)*) => {
            match words {
                $($w => if kind == ConsumerKind::Spsc {
                    let mut receiver = SpscReceive::<$w>(layout::spsc_consumer(&mapping, placed)?);
                    ready()?;
                    consume(&mut receiver, args)
                } else {
                    let mut receiver = BroadcastReceive::<$w>(layout::broadcast_consumer(&mapping, placed)?);
                    ready()?;
                    consume(&mut receiver, args)
                },)*
                _ => Err(CliError::usage(format!("no element ring of {words} words"))),
            }
        };
    }
    element_ring!(2 4 8 16 32 64 128 256 512)
}

/// What the consumer counts and checks, the same for every transport.
#[derive(Debug)]
struct Tally {
    /// Messages of the throughput phase.
    messages: u64,
    /// Messages of both phases.
    total: u64,
    /// The next sequence number.
    expected: u64,
    stream_end_ns: u64,
    /// One-way latencies of the latency phase.
    latencies: Vec<u64>,
    /// One-way latencies of the stamped messages of the throughput phase.
    stream_latencies: Vec<u64>,
}

impl Tally {
    fn new(args: &ConsumerArgs) -> Self {
        Self {
            messages: args.messages,
            total: args.messages + args.latency_messages,
            expected: 0,
            stream_end_ns: 0,
            latencies: Vec::with_capacity(usize::try_from(args.latency_messages).unwrap_or(0)),
            stream_latencies: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.expected >= self.total
    }

    /// Message `seq`, stamped `sent` (0: not stamped), just arrived: it must be the next one.
    #[inline]
    fn take(&mut self, seq: u64, sent: u64) -> Result<()> {
        let arrived = if sent == 0 { 0 } else { now_ns() };
        if seq != self.expected {
            return Err(CliError::runtime(format!(
                "message {} expected, message {seq} arrived",
                self.expected
            )));
        }
        if self.expected < self.messages {
            if sent != 0 {
                self.stream_latencies.push(arrived.saturating_sub(sent));
            }
            if self.expected + 1 == self.messages {
                self.stream_end_ns = if arrived == 0 { now_ns() } else { arrived };
            }
        } else {
            self.latencies.push(arrived.saturating_sub(sent));
        }
        self.expected += 1;
        Ok(())
    }

    fn report(mut self, lost: u64) -> ConsumerReport {
        ConsumerReport {
            received: self.expected,
            stream_end_ns: self.stream_end_ns,
            latency: Latency::of(&mut self.latencies),
            stream_latency: Latency::of(&mut self.stream_latencies),
            lost,
        }
    }
}

/// Receives and checks every message of a ring.
fn consume<R: RingReceiver>(receiver: &mut R, args: &ConsumerArgs) -> Result<ConsumerReport> {
    let mut tally = Tally::new(args);
    let mut idle = 0_u32;
    let mut idle_since: Option<Instant> = None;
    while !tally.done() {
        let Some((seq, sent)) = receiver.try_recv()? else {
            std::hint::spin_loop();
            idle = idle.wrapping_add(1);
            if idle.is_multiple_of(4096) {
                // As the producer does: on a busy machine, or one CPU for both, let it run.
                std::thread::yield_now();
                if idle_since.get_or_insert_with(Instant::now).elapsed() > CHILD_TIMEOUT {
                    return Err(CliError::runtime(format!(
                        "no message for {} s after {} of {}",
                        CHILD_TIMEOUT.as_secs(),
                        tally.expected,
                        tally.total
                    )));
                }
            }
            continue;
        };
        idle_since = None;
        tally.take(seq, sent)?;
    }
    Ok(tally.report(receiver.lost()))
}

/// The socket baseline: reads `size`-byte messages from the socket on stdin; acknowledges the
/// end of the throughput phase and each latency message with one byte.
fn socket(args: &ConsumerArgs) -> Result<ConsumerReport> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|error| CliError::runtime(format!("cannot take the socket on stdin: {error}")))?;
    let stream = UnixStream::from(fd);
    stream.set_read_timeout(Some(CHILD_TIMEOUT))?;
    let mut acks = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let size = usize::try_from(args.size).map_err(|_| CliError::usage("message size too large"))?;
    let mut buffer = vec![0; size];
    let mut tally = Tally::new(args);
    ready()?;
    while !tally.done() {
        reader.read_exact(&mut buffer).map_err(|error| {
            CliError::runtime(format!(
                "socket: message {} of {} did not arrive: {error}",
                tally.expected, tally.total
            ))
        })?;
        let (seq, sent) = decode_bytes(&buffer, size).ok_or_else(|| {
            CliError::runtime("socket: a message arrived damaged (its check word is wrong)")
        })?;
        tally.take(seq, sent)?;
        // The end of the throughput phase, and each latency message, are acknowledged.
        if tally.expected >= tally.messages {
            acks.write_all(&[1])?;
        }
    }
    Ok(tally.report(0))
}
