//! One million random candidate names, each judged by `Name` and by a reference validator written
//! here in a different style (a state machine over UTF-8 chunks and character classes). Both the
//! verdict and the exact error must agree.

use std::thread;

use shmkit_name::{Name, NameError};

const CANDIDATES: u32 = 1_000_000;
const THREADS: u32 = 4;

use shmkit_testkit::Rng;

/// What a validator says about a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Valid,
    Empty,
    TooLong(usize),
    InvalidChar(char, usize),
    InvalidByte(u8, usize),
    BadFirst(char),
}

impl Verdict {
    fn kind(self) -> usize {
        match self {
            Self::Valid => 0,
            Self::Empty => 1,
            Self::TooLong(_) => 2,
            Self::InvalidChar(..) => 3,
            Self::InvalidByte(..) => 4,
            Self::BadFirst(_) => 5,
        }
    }
}

fn verdict_of(result: Result<Name, NameError>) -> Verdict {
    match result {
        Ok(_) => Verdict::Valid,
        Err(NameError::Empty) => Verdict::Empty,
        Err(NameError::TooLong { len }) => Verdict::TooLong(len),
        Err(NameError::InvalidChar { ch, at }) => Verdict::InvalidChar(ch, at),
        Err(NameError::InvalidByte { byte, at }) => Verdict::InvalidByte(byte, at),
        Err(NameError::BadFirst { ch }) => Verdict::BadFirst(ch),
        Err(error @ NameError::NotPadded { .. }) => {
            panic!("only keys can be badly padded: {error}")
        }
    }
}

/// The rules, restated: 1 to 39 bytes; characters `[0-9A-Za-z_.-]`; the first a letter or digit;
/// report the first problem scanning left to right, bytes that are not UTF-8 as bytes.
fn reference(bytes: &[u8]) -> Verdict {
    #[derive(Clone, Copy)]
    enum State {
        First,
        Rest,
    }
    enum Class {
        LetterOrDigit,
        Punctuation,
        Other,
    }
    match bytes.len() {
        0 => return Verdict::Empty,
        len @ 40.. => return Verdict::TooLong(len),
        _ => {}
    }
    let mut state = State::First;
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        for (index, ch) in chunk.valid().char_indices() {
            let class = match ch {
                '0'..='9' | 'A'..='Z' | 'a'..='z' => Class::LetterOrDigit,
                '_' | '.' | '-' => Class::Punctuation,
                _ => Class::Other,
            };
            state = match (state, class) {
                (_, Class::Other) => return Verdict::InvalidChar(ch, offset + index),
                (State::First, Class::Punctuation) => return Verdict::BadFirst(ch),
                (_, Class::LetterOrDigit | Class::Punctuation) => State::Rest,
            };
        }
        offset += chunk.valid().len();
        if let Some(&byte) = chunk.invalid().first() {
            return Verdict::InvalidByte(byte, offset);
        }
    }
    Verdict::Valid
}

const VALID: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.-";
const INVALID_ASCII: &[u8] = b"\0\t\n /\\:*?\"'<>|@#$%&+=,;!~`()[]{}^\x7f";
const LENGTHS_AT_EDGES: [usize; 7] = [0, 1, 2, 38, 39, 40, 41];

/// Fills `buf` with a candidate and returns its length in bytes (at most 48).
fn candidate(rng: &mut Rng, buf: &mut [u8; 64]) -> usize {
    let shape = rng.next();
    let target = if shape % 100 < 40 {
        LENGTHS_AT_EDGES[(shape >> 8) as usize % LENGTHS_AT_EDGES.len()]
    } else {
        (shape >> 8) as usize % 46
    };
    // Percent of characters drawn from outside the valid set; most candidates are clean or
    // nearly so, so that valid names and late errors are common.
    let dirty = match (shape >> 16) % 100 {
        0..50 => 0,
        50..85 => 2,
        _ => 15,
    };
    let mut len = 0;
    while len < target {
        // One draw per character: the low bits pick the class, the high bits the character.
        let draw = rng.next();
        let roll = draw % 100;
        let pick = (draw >> 32) as usize;
        len += if roll >= dirty {
            buf[len] = VALID[pick % VALID.len()];
            1
        } else if roll.is_multiple_of(2) {
            buf[len] = INVALID_ASCII[pick % INVALID_ASCII.len()];
            1
        } else {
            random_multibyte(rng).encode_utf8(&mut buf[len..]).len()
        };
    }
    // Defects the loop rarely makes on its own.
    let at = (shape >> 32) as usize % len.max(1);
    match (shape >> 24) % 100 {
        0..10 if len > 0 => buf[0] = b"_.-"[at % 3],
        10..15 if len > 0 => buf[at] = 0x80 | (shape >> 48) as u8,
        15..17 if len > 0 => buf[at] = 0,
        _ => {}
    }
    len
}

fn random_multibyte(rng: &mut Rng) -> char {
    // Two, three and four-byte encodings, around the surrogate gap.
    let ranges = [0x80..0x800, 0x800..0xD800, 0xE000..0x1_0000, 0x1_0000..0x11_0000];
    let draw = rng.next();
    let range = &ranges[draw as usize % ranges.len()];
    let code = range.start + (draw >> 32) as u32 % (range.end - range.start);
    char::from_u32(code).unwrap_or('\u{FFFD}')
}

/// Checks `count` candidates from `seed`; returns how many of each verdict kind were seen.
fn check(seed: u64, count: u32) -> [u32; 6] {
    let mut rng = Rng(seed);
    let mut buf = [0; 64];
    let mut kinds = [0; 6];
    for _ in 0..count {
        let len = candidate(&mut rng, &mut buf);
        let bytes = &buf[..len];
        let expected = reference(bytes);
        let result = Name::from_bytes(bytes);
        assert_eq!(verdict_of(result), expected, "from_bytes(b\"{}\")", bytes.escape_ascii());
        if let Ok(text) = std::str::from_utf8(bytes) {
            assert_eq!(Name::new(text), result, "new({text:?})");
        }
        if let Ok(name) = result {
            check_valid(name, bytes);
        }
        kinds[expected.kind()] += 1;
    }
    kinds
}

/// Round trips of an accepted name: text, length, zero-padded key and back.
fn check_valid(name: Name, bytes: &[u8]) {
    assert_eq!(name.as_str().as_bytes(), bytes);
    assert_eq!(name.len(), bytes.len());
    let key = name.key();
    let (prefix, padding) = key.as_bytes().split_at(bytes.len());
    assert_eq!((prefix, padding), (bytes, &[0; 40][bytes.len()..]));
    assert_eq!(key.to_name(), Ok(name));
}

#[test]
fn a_million_random_candidates_agree_with_the_reference() {
    let per_thread = CANDIDATES / THREADS;
    let seen = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|index| scope.spawn(move || check(0x9E37_79B9 + u64::from(index), per_thread)))
            .collect();
        let mut total = [0; 6];
        for worker in workers {
            let seen = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (total, seen) in total.iter_mut().zip(seen) {
                *total += seen;
            }
        }
        total
    });
    // Each verdict must be common enough that a disagreement on it would have shown.
    let names = ["Valid", "Empty", "TooLong", "InvalidChar", "InvalidByte", "BadFirst"];
    for (name, count) in names.iter().zip(seen) {
        assert!(count >= CANDIDATES / 100, "only {count} {name} verdicts: {seen:?}");
    }
}

#[test]
fn the_reference_agrees_with_hand_checked_cases() {
    // The reference is only useful if it is right; pin it on the cases the unit tests pin.
    assert_eq!(reference(b""), Verdict::Empty);
    assert_eq!(reference(&[b'a'; 39]), Verdict::Valid);
    assert_eq!(reference(&[b'a'; 40]), Verdict::TooLong(40));
    assert_eq!(reference(b"abc/"), Verdict::InvalidChar('/', 3));
    assert_eq!(reference(b"/abc"), Verdict::InvalidChar('/', 0));
    assert_eq!(reference(b"_a/"), Verdict::BadFirst('_'));
    assert_eq!(reference("aé".as_bytes()), Verdict::InvalidChar('é', 1));
    assert_eq!(reference(b"ab\xff"), Verdict::InvalidByte(0xFF, 2));
    assert_eq!(reference(b"a\xe0\x80\x80"), Verdict::InvalidByte(0xE0, 1));
    assert_eq!(reference(b"a\0"), Verdict::InvalidChar('\0', 1));
}
