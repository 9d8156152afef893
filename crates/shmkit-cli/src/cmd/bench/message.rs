//! What a bench message carries, and the clock that stamps it.
//!
//! A message of `size` bytes is little-endian u64 words: its sequence number, its send time
//! (nanoseconds of `CLOCK_MONOTONIC`, the same clock in every process, or 0 when not sampled),
//! then padding, and, when there is room (24 bytes or more), a check word derived from the
//! sequence number in its last 8 bytes. The consumer checks the sequence number of every message
//! (they must arrive in order, none lost or repeated) and the check word, so a torn or misplaced
//! message is caught.
//!
//! Element rings (SPSC, broadcast) carry `[u64; W]` with `W` the message's words rounded up to a
//! power of two (2 to 512: 16 bytes to 4 KiB); the check word is then the element's last word.

/// The system-wide monotonic clock in nanoseconds (`clock_gettime(CLOCK_MONOTONIC)`), comparable
/// between processes, unlike `std::time::Instant`, whose value is private to a process.
pub fn now_ns() -> u64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(time.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(time.tv_nsec).unwrap_or(0))
}

/// The check word of message `seq`.
pub const fn check_word(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5348_4D4B_4245_4E43
}

/// The largest element the element rings carry, in u64 words (4 KiB).
pub const MAX_ELEMENT_WORDS: usize = 512;

/// Words of the element that carries a `size`-byte message: a power of two, at least 2; `None`
/// above [`MAX_ELEMENT_WORDS`].
pub fn element_words(size: u64) -> Option<usize> {
    let words = usize::try_from(size.div_ceil(8)).ok()?.max(2).next_power_of_two();
    (words <= MAX_ELEMENT_WORDS).then_some(words)
}

/// Message `seq` stamped `sent` as an element.
#[inline]
pub fn encode_words<const W: usize>(seq: u64, sent: u64) -> [u64; W] {
    let mut words = [0; W];
    words[0] = seq;
    words[1] = sent;
    if W > 2 {
        words[W - 1] = check_word(seq);
    }
    words
}

/// The sequence number and send time of an element, if its check word is right.
#[inline]
pub fn decode_words<const W: usize>(words: &[u64; W]) -> Option<(u64, u64)> {
    let seq = words[0];
    (W <= 2 || words[W - 1] == check_word(seq)).then_some((seq, words[1]))
}

/// Writes message `seq` stamped `sent` into `buffer` (the message's bytes).
#[inline]
pub fn encode_bytes(buffer: &mut [u8], seq: u64, sent: u64) {
    buffer[..8].copy_from_slice(&seq.to_le_bytes());
    buffer[8..16].copy_from_slice(&sent.to_le_bytes());
    let len = buffer.len();
    if len >= 24 {
        buffer[len - 8..].copy_from_slice(&check_word(seq).to_le_bytes());
    }
}

/// The sequence number and send time of a message's bytes, if its length and check word are right.
#[inline]
pub fn decode_bytes(buffer: &[u8], size: usize) -> Option<(u64, u64)> {
    if buffer.len() != size || size < 16 {
        return None;
    }
    let word = |at: usize| {
        buffer.get(at..at + 8).and_then(|bytes| bytes.try_into().ok()).map(u64::from_le_bytes)
    };
    let seq = word(0)?;
    let sent = word(8)?;
    if size >= 24 && word(size - 8)? != check_word(seq) {
        return None;
    }
    Some((seq, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_catch_damage() {
        let words = encode_words::<8>(42, 7);
        assert_eq!(decode_words(&words), Some((42, 7)));
        let mut bad = words;
        bad[0] = 43;
        assert_eq!(decode_words(&bad), None);
        assert_eq!(decode_words(&encode_words::<2>(5, 6)), Some((5, 6)));

        let mut buffer = vec![0; 100];
        encode_bytes(&mut buffer, 9, 10);
        assert_eq!(decode_bytes(&buffer, 100), Some((9, 10)));
        buffer[99] ^= 1;
        assert_eq!(decode_bytes(&buffer, 100), None);
        assert_eq!(decode_bytes(&buffer[..50], 100), None);
    }

    #[test]
    fn element_sizes() {
        assert_eq!(element_words(16), Some(2));
        assert_eq!(element_words(17), Some(4));
        assert_eq!(element_words(64), Some(8));
        assert_eq!(element_words(100), Some(16));
        assert_eq!(element_words(4096), Some(512));
        assert_eq!(element_words(4097), None);
        assert!(now_ns() > 0);
    }
}
