//! Byte sizes on the command line: a decimal number with an optional binary suffix, and the
//! reverse, sizes written for people.
//!
//! Every suffix is binary (1K = 1024), as for memory everywhere in Linux (`ipcs`, `free`,
//! `/proc/meminfo`): `B`; `K`, `KB`, `KiB`; `M`, `MB`, `MiB`; `G`, `GB`, `GiB`; `T`, `TB`, `TiB`,
//! in any letter case (`4k`, `64mib`).

/// Parses `4096`, `4K`, `2M`, `1G`, `64MiB`, `3t`: the error names the value and what is accepted.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    let accepted = "use a number of bytes with an optional suffix K, M, G, T (or KiB, MiB, GiB, TiB; binary: 1K = 1024), like 4096, 64K, 2M, 1G";
    if digits.is_empty() {
        return Err(format!("invalid size \"{text}\": {accepted}"));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "invalid size \"{text}\": unknown suffix \"{suffix}\"; {accepted}"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(1 << shift))
        .ok_or_else(|| format!("invalid size \"{text}\": too large (at most {} bytes)", u64::MAX))
}

/// A size for people: exact bytes below 1 KiB, else the largest binary unit that keeps at least
/// one whole unit, with one decimal unless it is whole (`4 KiB`, `1.5 MiB`, `2 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1 << (10 * (unit + 1)) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let scale = 1_u64 << (10 * unit);
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        #[allow(clippy::cast_precision_loss, reason = "one decimal for people")]
        let value = bytes as f64 / scale as f64;
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A count with a metric suffix for rates: `950`, `12.3 k`, `4.56 M`, `1.20 G`.
pub fn human_rate(value: f64) -> String {
    if value >= 1e9 {
        format!("{:.2} G", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// A byte rate for people (binary units, per second).
pub fn human_byte_rate(bytes_per_second: f64) -> String {
    const UNITS: [&str; 4] = ["KiB/s", "MiB/s", "GiB/s", "TiB/s"];
    let mut value = bytes_per_second / 1024.0;
    if value < 1.0 {
        return format!("{bytes_per_second:.0} B/s");
    }
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1024.0 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// Nanoseconds for people: `850 ns`, `3.9 us`, `12.3 us`, `4.56 ms`, `1.20 s`.
pub fn human_nanos(nanos: u64) -> String {
    #[allow(clippy::cast_precision_loss, reason = "display only")]
    let value = nanos as f64;
    if nanos >= 1_000_000_000 {
        format!("{:.2} s", value / 1e9)
    } else if nanos >= 1_000_000 {
        format!("{:.2} ms", value / 1e6)
    } else if nanos >= 1_000 {
        format!("{:.1} us", value / 1e3)
    } else {
        format!("{nanos} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_suffix() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("3KB"), Ok(3072));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size(" 8K "), Ok(8192));
    }

    #[test]
    fn refuses_bad_sizes_naming_them() {
        for bad in ["", "K", "-1", "1.5M", "4X", "4 K", "0x10", "1e3"] {
            let error = parse_size(bad).expect_err(bad);
            assert!(error.contains(&format!("\"{bad}\"")), "{error}");
        }
        assert!(parse_size("20000000000000000000").is_err());
        assert!(parse_size("17179869184G").is_err());
    }

    #[test]
    fn writes_sizes_for_people() {
        assert_eq!(human(100), "100 B");
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(1536 * 1024), "1.5 MiB");
        assert_eq!(human(2 << 30), "2 GiB");
        assert_eq!(human_nanos(850), "850 ns");
        assert_eq!(human_nanos(12_345), "12.3 us");
        assert_eq!(human_nanos(3_931), "3.9 us");
        assert_eq!(human_rate(4_560_000.0), "4.56 M");
        assert_eq!(human_byte_rate(3.0 * 1024.0 * 1024.0), "3.00 MiB/s");
    }
}
