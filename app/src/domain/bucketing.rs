//! Deciding whether the flag is on for one unit (a user, a request): Unleash's sticky,
//! monotonic bucketing, so teams moving from Unleash keep their users in the same buckets.
//!
//! A unit's bucket is `murmur3_x86_32("<group>:<unit>", seed 0) % 100 + 1`, a number from 1 to
//! 100 that never changes; the flag is on when the bucket is at most the rollout percentage.
//! Raising the percentage therefore only ever adds units.

use super::plan::StageFlag;
use serde::{Deserialize, Serialize};

/// MurmurHash3, x86 32-bit variant.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, byte) in tail.iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The unit's bucket, 1 to 100 (Unleash's `normalizedValue` with normalizer 100).
pub fn bucket(group: &str, unit: &str) -> u32 {
    // Hash "<group>:<unit>" without allocating: the hot path of every flag evaluation.
    let mut buf = [0u8; 256];
    let len = group.len() + 1 + unit.len();
    let hash = if len <= buf.len() {
        buf[..group.len()].copy_from_slice(group.as_bytes());
        buf[group.len()] = b':';
        buf[group.len() + 1..len].copy_from_slice(unit.as_bytes());
        murmur3_x86_32(&buf[..len], 0)
    } else {
        murmur3_x86_32(format!("{group}:{unit}").as_bytes(), 0)
    };
    hash % 100 + 1
}

/// A unit's key in the store: 64 bits of MurmurHash3 (two 32-bit hashes of the unit, seeds 0
/// and 1), so distinct units can be counted without storing their names. Pseudonymous, not
/// anonymous: the hash is unsalted, so whoever can guess the names (sequential user ids) can
/// find their keys. Stable across releases: keys stored today are compared with keys computed
/// tomorrow. Two units share a key with odds of about n²/2⁶⁵ among n units (about one in
/// 3.7 × 10⁷ at a million).
pub fn unit_key(unit: &str) -> i64 {
    let (high, low) = (murmur3_x86_32(unit.as_bytes(), 0), murmur3_x86_32(unit.as_bytes(), 1));
    ((u64::from(high) << 32) | u64::from(low)) as i64
}

/// Why a unit got the value it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag is off for everyone.
    Disabled,
    /// The unit's bucket decided (on: inside the percentage; off: outside).
    Split,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Disabled => "DISABLED",
            Reason::Split => "SPLIT",
        }
    }
}

/// The flag's answer for one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub enabled: bool,
    pub bucket: u32,
    pub reason: Reason,
}

impl Evaluation {
    /// The experiment arm: treatment gets the new code path, control keeps the old one.
    pub fn variant(&self) -> &'static str {
        if self.enabled { "treatment" } else { "control" }
    }
}

/// Evaluates `flag` for `unit` in bucketing `group`.
pub fn evaluate(flag: StageFlag, group: &str, unit: &str) -> Evaluation {
    let bucket = bucket(group, unit);
    if !flag.enabled {
        return Evaluation { enabled: false, bucket, reason: Reason::Disabled };
    }
    Evaluation { enabled: bucket <= u32::from(flag.percentage.get()), bucket, reason: Reason::Split }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::units::Percentage;
    use proptest::prelude::*;

    /// Vectors from the reference implementation (Python's `mmh3.hash(s, 0, signed=False)`).
    #[test]
    fn murmur3_matches_the_reference_vectors() {
        let check = |s: &str, expected: u32| assert_eq!(murmur3_x86_32(s.as_bytes(), 0), expected, "{s:?}");
        check("", 0);
        check("hello", 613_153_351);
        check("The quick brown fox jumps over the lazy dog", 776_992_547);
        check("async_upload:user-1", 197_914_347);
        check("async_upload:user-42", 877_795_500);
        check("async_upload:😀ünïcode", 1_099_474_957);
    }

    /// The same reference: `(mmh3.hash(s, 0) << 32 | mmh3.hash(s, 1))` as a signed 64-bit number.
    #[test]
    fn unit_keys_are_two_reference_hashes() {
        assert_eq!(murmur3_x86_32(b"hello", 1), 3_142_237_357);
        assert_eq!(unit_key("hello"), 2_633_473_593_120_046_253);
        assert_eq!(unit_key("user-42"), -5_083_760_439_237_550_312);
    }

    #[test]
    fn buckets_are_unleash_normalized_values() {
        assert_eq!(bucket("async_upload", "user-1"), 48);
        assert_eq!(bucket("async_upload", "user-42"), 1);
        let long_unit = "u".repeat(400);
        assert_eq!(bucket("g", &long_unit), murmur3_x86_32(format!("g:{long_unit}").as_bytes(), 0) % 100 + 1);
    }

    fn on(p: i64) -> StageFlag {
        StageFlag { enabled: true, percentage: Percentage::new(p).unwrap() }
    }

    #[test]
    fn the_edges_of_the_rollout() {
        // user-42 sits in bucket 1: the very first 1% gets it.
        assert!(evaluate(on(1), "async_upload", "user-42").enabled);
        assert!(!evaluate(on(0), "async_upload", "user-42").enabled);
        // user-1 sits in bucket 48: on at exactly 48%, off at 47%.
        assert!(evaluate(on(48), "async_upload", "user-1").enabled);
        assert!(!evaluate(on(47), "async_upload", "user-1").enabled);
        let off = evaluate(StageFlag::OFF, "async_upload", "user-42");
        assert_eq!((off.enabled, off.reason, off.variant()), (false, Reason::Disabled, "control"));
        assert!(evaluate(on(100), "async_upload", "anyone").enabled);
    }

    proptest! {
        /// Sticky and monotonic: a unit on at one stage stays on at every later one.
        #[test]
        fn a_unit_on_at_a_lower_percentage_is_on_at_every_higher_one(unit in "\\PC{0,40}", low in 0i64..=100, high in 0i64..=100) {
            let (low, high) = (low.min(high), low.max(high));
            if evaluate(on(low), "async_upload", &unit).enabled {
                prop_assert!(evaluate(on(high), "async_upload", &unit).enabled);
            }
            // Sticky: the answer is Unleash's rule on the unit's hash, recomputed here from the
            // reference-checked murmur3 (`bucket(u) ≤ p`), and it does not depend on the call.
            let expected_bucket = murmur3_x86_32(format!("async_upload:{unit}").as_bytes(), 0) % 100 + 1;
            let got = evaluate(on(low), "async_upload", &unit);
            prop_assert_eq!((got.bucket, got.enabled), (expected_bucket, expected_bucket <= low as u32));
        }
    }

    proptest! {
        // A fixed seed: a statistical bound checked on fresh populations every run fails now
        // and then by chance alone — and Unleash's hash on sequential names does stray: the
        // prefix `unit-9662719046097416010-` gave 51.61% at 50% (4.6 standard errors), the one
        // such case in 31 prefixes tried. The same 24 populations every run keep the check.
        #![proptest_config(ProptestConfig {
            cases: 24,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_b0c7),
            ..ProptestConfig::default()
        })]

        /// At p% the share of a large random population is p% within a few points.
        #[test]
        fn the_share_on_is_the_percentage(seed in any::<u64>(), p in prop::sample::select(vec![1i64, 10, 50, 100])) {
            let n = 20_000;
            let on_count = (0..n).filter(|i| evaluate(on(p), "async_upload", &format!("unit-{seed}-{i}")).enabled).count();
            let share = on_count as f64 * 100.0 / n as f64;
            // 20k draws: the standard error at 50% is 0.35 points; 1.5 points is over 4 sigma.
            prop_assert!((share - p as f64).abs() < 1.5, "{p}% gave {share:.2}%");
        }
    }
}
