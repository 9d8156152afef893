//! Blocking calls of the byte ring (`std` feature): wait with a [`WaitStrategy`] on the ring's
//! events, and notify the other side after publishing (the pairing rule is in the
//! [module docs](super)).

use core::time::Duration;
use std::time::Instant;

use shmkit_sync::{Event, WaitStrategy};

use super::{ByteConsumer, ByteProducer, ReadGrant, WHAT, WriteGrant};
use crate::error::{Error, Result};

/// Waits with `strategy` on `event` until `check()` is `Ok(true)` (returns `Ok`), fails
/// (returns its error) or `timeout` passes ([`Error::TimedOut`]). `check` loads with `Acquire`.
pub(crate) fn wait_for(
    strategy: &impl WaitStrategy,
    event: &Event,
    what: &'static str,
    mut check: impl FnMut() -> Result<bool>,
    timeout: Option<Duration>,
) -> Result<()> {
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    loop {
        if check()? {
            return Ok(());
        }
        let left = match deadline {
            None => None,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(Error::TimedOut { what }),
            },
        };
        // An error ends the wait too: the next `check()` reports it.
        strategy.wait_until(event, || check().unwrap_or(true), left);
    }
}

impl ByteProducer<'_> {
    /// [`ByteProducer::append`], waiting with `strategy` while the ring has no room (at most
    /// `timeout`, then [`Error::TimedOut`]; `None` waits forever), then notifying the consumer's
    /// event: no system call unless the consumer sleeps.
    pub fn append_blocking(
        &mut self,
        record: &[u8],
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let mut grant = self.reserve_blocking(record.len(), strategy, timeout)?;
        grant.copy_from_slice(0, record);
        grant.commit(record.len());
        Ok(())
    }

    /// [`ByteProducer::reserve`], waiting as [`ByteProducer::append_blocking`] does; the grant's
    /// [`WriteGrant::commit`] notifies the consumer's event.
    pub fn reserve_blocking(
        &mut self,
        length: usize,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<WriteGrant<'_>> {
        let plan = self.plan(length)?;
        let event = self.ring.space_event();
        wait_for(strategy, event, WHAT, || self.has_room(plan.needed()), timeout)?;
        let mut grant = self.grant(plan, length);
        grant.notify = true;
        Ok(grant)
    }

    /// Wakes the consumer if it sleeps on the ring's data event; without a sleeper, one
    /// `StoreLoad` barrier and one load, no system call. For a producer that appends with the
    /// non-waiting calls and has a consumer that may sleep: call it after a batch of appends.
    pub fn notify_consumer(&self) {
        self.ring.data_event().notify_all();
    }
}

impl ByteConsumer<'_> {
    /// [`ByteConsumer::read`], waiting with `strategy` while the ring is empty (at most
    /// `timeout`, then [`Error::TimedOut`]; `None` waits forever), then notifying the producer's
    /// event after consuming the record: no system call unless the producer sleeps.
    pub fn read_blocking(
        &mut self,
        buffer: &mut [u8],
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let grant = self.peek_blocking(strategy, timeout)?;
        let length = grant.len();
        if length > buffer.len() {
            return Err(super::consumer::buffer_too_short(length));
        }
        grant.copy_to(buffer);
        grant.release();
        Ok(length)
    }

    /// [`ByteConsumer::peek`], waiting as [`ByteConsumer::read_blocking`] does; the grant's
    /// [`ReadGrant::release`] notifies the producer's event.
    pub fn peek_blocking(
        &mut self,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<ReadGrant<'_>> {
        let event = self.ring.data_event();
        wait_for(strategy, event, WHAT, || self.has_record(), timeout)?;
        // `has_record` said yes, so `peek` finds the record (or reports it corrupted).
        self.peek_notifying()?.ok_or(Error::TimedOut { what: WHAT })
    }

    /// Wakes the producer if it sleeps on the ring's space event; without a sleeper, one
    /// `StoreLoad` barrier and one load, no system call. For a consumer that reads with the
    /// non-waiting calls and has a producer that may sleep: call it after a batch of reads.
    pub fn notify_producer(&self) {
        self.ring.space_event().notify_all();
    }
}
