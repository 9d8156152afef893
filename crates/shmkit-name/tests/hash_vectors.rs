//! `Key::hash64` and `Name::sysv_key` are a format shared between processes and versions: fixed
//! vectors pin them, a second implementation written from the documented definition checks the
//! definition, and distribution checks back the claim that low bits make good buckets.

use shmkit_name::{Key, Name};

/// Hashes computed once from the documented definition (by a separate Python script) and frozen:
/// changing any of them breaks every shared table and System V key made by an earlier version.
const NAME_VECTORS: [(&str, u64, u32); 8] = [
    ("a", 0x08EB_A3CD_916A_E286, 0x9981_414B),
    ("A", 0xDEB0_F08A_A63F_E0EB, 0x788F_1061),
    ("0", 0xDF9B_1BB5_2582_3ED9, 0xFA19_256C),
    ("abcdefgh", 0x5BA5_0BC1_13D0_CE44, 0x4875_C585),
    ("orders.v1", 0x9706_1273_93F3_2CFA, 0x04F5_3E89),
    ("abcdefghi", 0x1F7F_308D_39F1_EBF1, 0x268E_DB7C),
    ("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0x23A3_5D61_6AE9_D0D5, 0x494A_8DB4),
    ("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabc", 0xF448_7CDA_EDEA_008E, 0x19A2_7C54),
];

fn name(text: &str) -> Name {
    Name::new(text).unwrap_or_else(|error| panic!("{text:?} should be valid: {error}"))
}

#[test]
fn fixed_vectors() {
    for (text, hash, sysv) in NAME_VECTORS {
        let name = name(text);
        assert_eq!(name.key().hash64(), hash, "hash of {text:?}");
        assert_eq!(name.sysv_key(), sysv.cast_signed(), "SysV key of {text:?}");
    }
    assert_eq!(Key::NULL.hash64(), 0xC8AB_888F_1266_9F8B);
    assert_eq!(Key::from_bytes([0xFF; 40]).hash64(), 0x1D57_0F5E_E5DD_540E);
    assert_eq!(
        Key::from_bytes(core::array::from_fn(|index| index as u8)).hash64(),
        0xE5BA_31B5_A7E0_A02F
    );
}

#[test]
fn usable_in_const() {
    const HASH: u64 = Key::NULL.hash64();
    assert_eq!(HASH, 0xC8AB_888F_1266_9F8B);
}

/// The definition from `Key::hash64`'s documentation, written again in a different style.
fn reference_hash(key: &[u8; 40]) -> u64 {
    const P: [u64; 8] = [
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
        0x4528_21E6_38D0_1377,
        0xBE54_66CF_34E9_0C6C,
        0xC0AC_29B7_C97C_50DD,
        0x3F84_D5B5_B547_0917,
    ];
    let mum = |a: u64, b: u64| {
        let product = u128::from(a) * u128::from(b);
        (product & u128::from(u64::MAX)) as u64 ^ (product >> 64) as u64
    };
    let w: Vec<u64> = key
        .chunks_exact(8)
        .map(|chunk| chunk.iter().rev().fold(0, |word, &byte| word << 8 | u64::from(byte)))
        .collect();
    let a = mum(w[0] ^ P[0], w[1] ^ P[1]);
    let b = mum(w[2] ^ P[2], w[3] ^ P[3]);
    let c = mum(w[4] ^ P[4], P[5]);
    mum(a ^ c ^ P[6], b ^ P[7])
}

use shmkit_testkit::Rng;

const NAME_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.-";

fn random_name(rng: &mut Rng) -> Name {
    let len = 1 + (rng.next() % 39) as usize;
    let mut bytes = [0; 39];
    for byte in &mut bytes[..len] {
        *byte = NAME_CHARS[(rng.next() % NAME_CHARS.len() as u64) as usize];
    }
    bytes[0] = b'n';
    Name::from_bytes(&bytes[..len])
        .unwrap_or_else(|error| panic!("generated an invalid name: {error}"))
}

#[test]
fn matches_the_documented_definition() {
    let mut rng = Rng(0x5EED);
    for round in 0..20_000 {
        let key = if round % 2 == 0 {
            random_name(&mut rng).key()
        } else {
            // Untrusted keys hash too: any 40 bytes.
            Key::from_bytes(core::array::from_fn(|_| rng.next() as u8))
        };
        assert_eq!(key.hash64(), reference_hash(key.as_bytes()), "{key:?}");
    }
}

/// Chi-square of `hash >> shift & 255` over 256 buckets; 255 degrees of freedom, so about
/// 255 ± 23 for a uniform hash.
fn chi_square(names: &[Name], shift: u32) -> f64 {
    let mut buckets = [0_u32; 256];
    for name in names {
        buckets[(name.key().hash64() >> shift & 255) as usize] += 1;
    }
    let expected = f64::from(buckets.iter().sum::<u32>()) / 256.0;
    buckets.iter().map(|&count| (f64::from(count) - expected).powi(2) / expected).sum()
}

#[test]
fn low_bits_spread_structured_names_evenly() {
    let families: [(&str, Vec<Name>); 4] = [
        ("region-N", (0..10_000).map(|index| name(&format!("region-{index}"))).collect()),
        ("N", (0..10_000).map(|index| name(&index.to_string())).collect()),
        // Only the last word differs.
        ("a..aNNNNN", (0..10_000).map(|index| name(&format!("{:a>34}{index:05}", ""))).collect()),
        // Only the first word differs.
        ("xNNNNb..b", (0..10_000).map(|index| name(&format!("x{index:04}{:b>34}", ""))).collect()),
    ];
    for (family, names) in &families {
        // Bits 0..8 index a 256-slot table; 24 and 56 check the middle and the top.
        for shift in [0, 24, 56] {
            let chi = chi_square(names, shift);
            // 6 standard deviations above the mean: the inputs are fixed, so this either always
            // passes or means the hash is badly biased.
            assert!(chi < 255.0 + 6.0 * 22.6, "{family}: chi-square {chi:.0} for bits {shift}..");
        }
        let distinct: std::collections::HashSet<u64> =
            names.iter().map(|name| name.key().hash64()).collect();
        assert_eq!(distinct.len(), names.len(), "{family}: 64-bit collision");
    }
}

#[test]
fn every_name_bit_affects_every_output_bit() {
    let mut rng = Rng(0xA7A1);
    let trials = 400;
    // flips[input bit][output bit]
    let mut flips = vec![[0_u32; 64]; 39 * 7];
    for _ in 0..trials {
        let base = random_name(&mut rng).key();
        let hash = base.hash64();
        for (input, counts) in flips.iter_mut().enumerate() {
            let mut bytes = *base.as_bytes();
            bytes[input / 7] ^= 1 << (input % 7);
            let changed = hash ^ Key::from_bytes(bytes).hash64();
            for (output, count) in counts.iter_mut().enumerate() {
                *count += (changed >> output & 1) as u32;
            }
        }
    }
    for (input, counts) in flips.iter().enumerate() {
        for (output, &count) in counts.iter().enumerate() {
            let rate = f64::from(count) / f64::from(trials);
            // 0.5 ± 0.025 standard deviation; 0.12 is about 5 of them.
            assert!(
                (rate - 0.5).abs() < 0.12,
                "input bit {input} flips output bit {output} at rate {rate}"
            );
        }
    }
}
