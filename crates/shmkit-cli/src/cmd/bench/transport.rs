//! The two ends of each ring, behind one interface, so that the producer and consumer loops are
//! written once for every ring.

use shmkit_ring::broadcast::{BroadcastConsumer, BroadcastProducer, Received};
use shmkit_ring::bytes::{ByteConsumer, ByteProducer};
use shmkit_ring::spsc::{Consumer, Producer};

use super::message::{decode_bytes, decode_words, encode_bytes, encode_words};
use crate::error::{CliError, Result};

/// The producer end of a ring.
pub trait RingSender {
    /// Sends message `seq` stamped `sent`; `false` when the ring is full.
    fn try_send(&mut self, seq: u64, sent: u64) -> Result<bool>;
    /// Whether the consumer has taken every message sent.
    fn drained(&mut self) -> Result<bool>;
}

/// The consumer end of a ring.
pub trait RingReceiver {
    /// The next message's sequence number and send time; `None` when the ring is empty.
    fn try_recv(&mut self) -> Result<Option<(u64, u64)>>;
    /// Messages lost to overruns so far.
    fn lost(&self) -> u64 {
        0
    }
}

fn ring(kind: &str, error: shmkit_ring::Error) -> CliError {
    CliError::runtime(format!("{kind} ring: {error}"))
}

fn damaged(kind: &str) -> CliError {
    CliError::runtime(format!("{kind} ring: a message arrived damaged (its check word is wrong)"))
}

/// The SPSC ring's producer, sending `[u64; W]` elements.
#[derive(Debug)]
pub struct SpscSend<'m, const W: usize>(pub Producer<'m, [u64; W]>);

impl<const W: usize> RingSender for SpscSend<'_, W> {
    #[inline]
    fn try_send(&mut self, seq: u64, sent: u64) -> Result<bool> {
        self.0.push(encode_words::<W>(seq, sent)).map_err(|error| ring("spsc", error))
    }

    fn drained(&mut self) -> Result<bool> {
        self.0.is_empty().map_err(|error| ring("spsc", error))
    }
}

/// The SPSC ring's consumer.
#[derive(Debug)]
pub struct SpscReceive<'m, const W: usize>(pub Consumer<'m, [u64; W]>);

impl<const W: usize> RingReceiver for SpscReceive<'_, W> {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<(u64, u64)>> {
        match self.0.pop().map_err(|error| ring("spsc", error))? {
            None => Ok(None),
            Some(words) => decode_words(&words).map(Some).ok_or_else(|| damaged("spsc")),
        }
    }
}

/// The byte ring's producer, appending `size`-byte records.
#[derive(Debug)]
pub struct BytesSend<'m> {
    /// The producer.
    pub producer: ByteProducer<'m>,
    /// One message's bytes, rewritten for each.
    pub buffer: Vec<u8>,
}

impl RingSender for BytesSend<'_> {
    #[inline]
    fn try_send(&mut self, seq: u64, sent: u64) -> Result<bool> {
        encode_bytes(&mut self.buffer, seq, sent);
        self.producer.append(&self.buffer).map_err(|error| ring("bytes", error))
    }

    fn drained(&mut self) -> Result<bool> {
        self.producer.is_empty().map_err(|error| ring("bytes", error))
    }
}

/// The byte ring's consumer.
#[derive(Debug)]
pub struct BytesReceive<'m> {
    /// The consumer.
    pub consumer: ByteConsumer<'m>,
    /// Room for one message (and a byte more, to catch a record that is too long).
    pub buffer: Vec<u8>,
    /// The message size.
    pub size: usize,
}

impl RingReceiver for BytesReceive<'_> {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<(u64, u64)>> {
        match self.consumer.read(&mut self.buffer).map_err(|error| ring("bytes", error))? {
            None => Ok(None),
            Some(len) => {
                let message = self.buffer.get(..len).ok_or_else(|| damaged("bytes"))?;
                decode_bytes(message, self.size).map(Some).ok_or_else(|| damaged("bytes"))
            }
        }
    }
}

/// The broadcast ring's producer.
#[derive(Debug)]
pub struct BroadcastSend<'m, const W: usize>(pub BroadcastProducer<'m, [u64; W]>);

impl<const W: usize> RingSender for BroadcastSend<'_, W> {
    #[inline]
    fn try_send(&mut self, seq: u64, sent: u64) -> Result<bool> {
        self.0.try_publish(&encode_words::<W>(seq, sent)).map_err(|error| ring("broadcast", error))
    }

    fn drained(&mut self) -> Result<bool> {
        let position = self.0.position();
        Ok(self.0.credit_consumers().all(|(_, read)| read >= position))
    }
}

/// The broadcast ring's credit consumer.
#[derive(Debug)]
pub struct BroadcastReceive<'m, const W: usize>(pub BroadcastConsumer<'m, [u64; W]>);

impl<const W: usize> RingReceiver for BroadcastReceive<'_, W> {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<(u64, u64)>> {
        match self.0.try_recv().map_err(|error| ring("broadcast", error))? {
            Received::Empty => Ok(None),
            Received::Message(words) => {
                decode_words(&words).map(Some).ok_or_else(|| damaged("broadcast"))
            }
            Received::Lapped { lost } => Err(CliError::runtime(format!(
                "broadcast ring: the consumer was overrun and lost {lost} messages, although it holds credit"
            ))),
        }
    }

    fn lost(&self) -> u64 {
        self.0.lost()
    }
}
