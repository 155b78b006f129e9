//! A mergeable latency sketch (DDSketch-style, logarithmic bins): any quantile of any merged
//! set of sketches is within 1% of the true value, so per-minute rollups can be combined into
//! any window without keeping the raw events.

use serde::{Deserialize, Serialize};

/// Bin growth factor: a value's bin spans `(γ^(i-1), γ^i]`, so the bin's midpoint estimate is
/// within α = (γ-1)/(γ+1) ≈ 0.99% of any value in it.
const GAMMA: f64 = 1.02;
/// Values at or below this (ms) share one bin and are reported as 0.
const MIN_VALUE: f64 = 1e-3;

/// Counts of values per logarithmic bin, kept dense between the lowest and highest bin used,
/// so merging thousands of per-minute sketches is a run of additions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sketch {
    zero: u64,
    /// Bin index of `bins[0]`.
    offset: i32,
    bins: Vec<u64>,
}

/// The guaranteed relative accuracy of [`Sketch::quantile`].
pub const RELATIVE_ACCURACY: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);

impl PartialEq for Sketch {
    /// Same counts in the same bins, however the storage happens to be laid out.
    fn eq(&self, other: &Sketch) -> bool {
        self.zero == other.zero && self.nonzero().eq(other.nonzero())
    }
}

impl Eq for Sketch {}

impl Sketch {
    pub fn new() -> Sketch {
        Sketch::default()
    }

    fn index(value: f64) -> i32 {
        (value.ln() / GAMMA.ln()).ceil().clamp(f64::from(i16::MIN + 1), f64::from(i16::MAX)) as i32
    }

    fn estimate(index: i32) -> f64 {
        2.0 * GAMMA.powi(index) / (GAMMA + 1.0)
    }

    /// (bin, count) for every bin that holds values, lowest first.
    fn nonzero(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.bins.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (self.offset + i as i32, *n))
    }

    /// Widens the dense range to cover bins `lo..=hi`.
    fn cover(&mut self, lo: i32, hi: i32) {
        if self.bins.is_empty() {
            self.offset = lo;
            self.bins = vec![0; (hi - lo + 1) as usize];
            return;
        }
        if lo < self.offset {
            let grow = (self.offset - lo) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = lo;
        }
        let top = self.offset + self.bins.len() as i32 - 1;
        if hi > top {
            self.bins.resize(self.bins.len() + (hi - top) as usize, 0);
        }
    }

    /// Adds one value; negative and non-finite values count as zero.
    pub fn add(&mut self, value: f64) {
        self.add_n(value, 1);
    }

    /// Adds `n` values equal to `value` (a histogram bucket's count at its bound).
    pub fn add_n(&mut self, value: f64, n: u64) {
        if n == 0 {
            return;
        }
        if value.is_finite() && value > MIN_VALUE {
            let index = Sketch::index(value);
            self.cover(index, index);
            self.bins[(index - self.offset) as usize] += n;
        } else {
            self.zero += n;
        }
    }

    /// Adds `n` values spread evenly over `(lower, upper]`: a histogram bucket's count, read as
    /// Prometheus's `histogram_quantile` reads it (linearly within the bucket). Each bin gets the
    /// whole counts between the rounded cumulative shares at its two edges: they add up to `n`
    /// exactly, and each is within one of the bin's share of the bucket's width. One pass over
    /// the bins, each edge the last one times γ (a pull of a week's histograms spreads buckets
    /// over hundreds of bins, tens of thousands of times).
    pub fn add_uniform(&mut self, lower: f64, upper: f64, n: u64) {
        if n == 0 {
            return;
        }
        if !(upper.is_finite() && lower.is_finite() && upper > lower) {
            return self.add_n(if upper.is_finite() { upper } else { lower }, n);
        }
        let width = upper - lower;
        // The whole counts at or below `x`, of `n` spread over the bucket.
        let below = |x: f64| (((x - lower) / width).clamp(0.0, 1.0) * n as f64).round() as u64;
        let mut counted = below(MIN_VALUE.min(upper));
        self.zero += counted;
        let (first, last) = (Sketch::index(lower.max(MIN_VALUE)), Sketch::index(upper));
        let mut edge = GAMMA.powi(first);
        for index in first..=last {
            let upto = if index == last { n } else { below(edge.min(upper)) };
            if upto > counted {
                self.cover(index, index);
                self.bins[(index - self.offset) as usize] += upto - counted;
                counted = upto;
            }
            edge *= GAMMA;
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.zero += other.zero;
        if other.bins.is_empty() {
            return;
        }
        self.cover(other.offset, other.offset + other.bins.len() as i32 - 1);
        let start = (other.offset - self.offset) as usize;
        for (mine, theirs) in self.bins[start..start + other.bins.len()].iter_mut().zip(&other.bins) {
            *mine += theirs;
        }
    }

    pub fn count(&self) -> u64 {
        self.zero + self.bins.iter().sum::<u64>()
    }

    /// The value at quantile `q` (0–1) by nearest rank, within [`RELATIVE_ACCURACY`]; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        self.value_at((q.clamp(0.0, 1.0) * (count - 1) as f64).floor() as u64)
    }

    /// The value of 0-based rank `rank` (the smallest is 0), within [`RELATIVE_ACCURACY`];
    /// `None` past the last.
    pub fn value_at(&self, rank: u64) -> Option<f64> {
        if rank < self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (index, n) in self.nonzero() {
            seen += n;
            if seen > rank {
                return Some(Sketch::estimate(index));
            }
        }
        None
    }

    /// How many values are above `limit`: `(certainly, possibly)`. A bin lying wholly above the
    /// limit counts in both; the bin that holds the limit counts only in the second, so a test
    /// that something is rare uses `possibly`, and a test that it is common uses `certainly`.
    pub fn count_above(&self, limit: f64) -> (u64, u64) {
        let (mut certainly, mut possibly) = (0, 0);
        for (index, n) in self.nonzero() {
            // Bin `index` holds values in (γ^(index−1), γ^index].
            if GAMMA.powi(index - 1) >= limit {
                certainly += n;
            }
            if GAMMA.powi(index) > limit {
                possibly += n;
            }
        }
        if limit < MIN_VALUE {
            possibly += self.zero;
        }
        (certainly, possibly)
    }

    /// Compact bytes for storage: [`FORMAT_2`], then as varints the zero count, the number of
    /// used bins, and per used bin its index (zigzag, as a step from the previous one) and count.
    /// A rollup row's sketch is rewritten by every batch that adds to it, so size is speed:
    /// typically 2–3 bytes a bin.
    pub fn to_bytes(&self) -> Vec<u8> {
        let used: Vec<(i32, u64)> = self.nonzero().collect();
        let mut out = Vec::with_capacity(FORMAT_2.len() + 4 + used.len() * 3);
        out.extend_from_slice(&FORMAT_2);
        put_varint(&mut out, self.zero);
        put_varint(&mut out, used.len() as u64);
        let mut previous = 0i64;
        for (index, count) in used {
            let step = i64::from(index) - previous;
            put_varint(&mut out, ((step << 1) ^ (step >> 63)) as u64);
            put_varint(&mut out, count);
            previous = i64::from(index);
        }
        out
    }

    /// Reads [`Sketch::to_bytes`], or the first format (rows stored by earlier versions): the
    /// zero count, then (bin as i16, count as u64) pairs, little-endian.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch, String> {
        let malformed = || format!("a sketch of {} bytes is malformed", bytes.len());
        let mut pairs: Vec<(i32, u64)> = Vec::new();
        let zero = if let Some(mut rest) = bytes.strip_prefix(&FORMAT_2[..]) {
            let zero = take_varint(&mut rest).ok_or_else(malformed)?;
            let used = take_varint(&mut rest).ok_or_else(malformed)?;
            let mut index = 0i64;
            for _ in 0..used {
                let step = take_varint(&mut rest).ok_or_else(malformed)?;
                index += ((step >> 1) as i64) ^ -((step & 1) as i64);
                let count = take_varint(&mut rest).ok_or_else(malformed)?;
                pairs.push((i32::try_from(index).ok().filter(|i| i.abs() <= i32::from(i16::MAX)).ok_or_else(malformed)?, count));
            }
            if !rest.is_empty() {
                return Err(malformed());
            }
            zero
        } else {
            if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(10) {
                return Err(malformed());
            }
            pairs.extend(
                bytes[8..]
                    .chunks_exact(10)
                    .map(|c| (i32::from(i16::from_le_bytes([c[0], c[1]])), u64::from_le_bytes(c[2..10].try_into().expect("8 bytes")))),
            );
            u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
        };
        let mut sketch = Sketch { zero, offset: 0, bins: Vec::new() };
        if let (Some(first), Some(last)) = (pairs.iter().map(|p| p.0).min(), pairs.iter().map(|p| p.0).max()) {
            sketch.cover(first, last);
            for (index, count) in pairs {
                sketch.bins[(index - sketch.offset) as usize] += count;
            }
        }
        Ok(sketch)
    }
}

/// Marks the second byte format. The first format opens with the zero count (u64,
/// little-endian), which would have to be 843,797,503 plus a multiple of 2^32 to look alike.
const FORMAT_2: [u8; 4] = [0xff, b'S', b'K', b'2'];

/// LEB128: seven bits a byte, low first.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_spread_evenly_reads_like_prometheus_histogram_quantile() {
        // 1,000 values in (100, 200]: a linear read puts the median at 150 and p95 at 195.
        let mut s = Sketch::new();
        s.add_uniform(100.0, 200.0, 1_000);
        assert_eq!(s.count(), 1_000);
        let close = |q: f64, expected: f64| {
            let got = s.quantile(q).unwrap();
            assert!((got - expected).abs() <= expected * 0.025, "q{q}: {got} against {expected}");
        };
        close(0.5, 150.0);
        close(0.95, 195.0);
        // None outside the bucket (give or take its last bin); about a tenth above 190.
        assert_eq!(s.count_above(204.1).1, 0);
        assert_eq!(s.count_above(99.0).1, 1_000);
        // 100 values lie above 190: at most that many certainly above, at least possibly (the
        // bin that holds 190 is the difference).
        let (certainly, possibly) = s.count_above(190.0);
        assert!(certainly <= 102 && possibly >= 98 && possibly - certainly <= 40, "{certainly} {possibly}");
        // A bucket from zero, and one count: still exactly as many values as counted.
        let mut z = Sketch::new();
        z.add_uniform(0.0, 0.5, 7);
        z.add_uniform(0.5, 1.0, 1);
        assert_eq!(z.count(), 8);
    }

    proptest! {
        /// Against an independent computation: each bin's exact share of the bucket, its edges
        /// from `powi` (the spread walks them by multiplication), and the values at or below
        /// the zero bin's limit.
        #[test]
        fn each_bin_holds_its_share_of_a_bucket_within_one(lower in 0.0f64..500.0, span in 0.01f64..5_000.0, n in 1u64..100_000) {
            let upper = lower + span;
            let mut s = Sketch::new();
            s.add_uniform(lower, upper, n);
            prop_assert_eq!(s.count(), n);
            let share = |a: f64, b: f64| (b.min(upper) - a.max(lower)).max(0.0) / span * n as f64;
            prop_assert!((s.zero as f64 - share(f64::MIN, MIN_VALUE)).abs() <= 1.0, "zero bin: {} of {}", s.zero, share(f64::MIN, MIN_VALUE));
            for (index, count) in s.nonzero() {
                let exact = share(GAMMA.powi(index - 1).max(MIN_VALUE), GAMMA.powi(index));
                prop_assert!((count as f64 - exact).abs() <= 1.0 + 1e-6 * n as f64, "bin {}: {} of {}", index, count, exact);
            }
        }
    }
    use proptest::prelude::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn an_empty_sketch_has_no_quantiles() {
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    #[test]
    fn bytes_round_trip() {
        let mut s = Sketch::new();
        for v in [0.0, 0.5, 12.0, 12.1, 250.0, 9_000.0, 1e9] {
            s.add(v);
        }
        assert_eq!(Sketch::from_bytes(&s.to_bytes()), Ok(s.clone()));
        assert!(Sketch::from_bytes(&[1, 2, 3]).is_err());
        let mut cut = s.to_bytes();
        cut.pop();
        assert!(Sketch::from_bytes(&cut).is_err());
        assert!(Sketch::from_bytes(&[&s.to_bytes()[..], &[0]].concat()).is_err(), "trailing bytes");

        // Rows written before the second format still read.
        let mut first = 1u64.to_le_bytes().to_vec(); // one zero
        for (index, count) in s.nonzero() {
            first.extend_from_slice(&(index as i16).to_le_bytes());
            first.extend_from_slice(&count.to_le_bytes());
        }
        assert_eq!(Sketch::from_bytes(&first), Ok(s));
    }

    #[test]
    fn a_used_bin_takes_a_few_bytes() {
        let mut s = Sketch::new();
        for i in 0..1_000 {
            s.add(100.0 + f64::from(i) * 0.5);
        }
        let bins = s.nonzero().count();
        assert!(s.to_bytes().len() <= 8 + 3 * bins, "{} bytes for {bins} bins", s.to_bytes().len());
    }

    proptest! {
        /// Every quantile of a merged sketch is within 1% of the exact nearest-rank quantile.
        #[test]
        fn quantiles_are_within_one_percent(
            parts in prop::collection::vec(prop::collection::vec(0.01f64..600_000.0, 1..300), 1..5),
            q in 0.0f64..=1.0,
        ) {
            let mut merged = Sketch::new();
            let mut all = Vec::new();
            for part in &parts {
                let mut s = Sketch::new();
                for v in part {
                    s.add(*v);
                }
                merged.merge(&s);
                all.extend_from_slice(part);
            }
            all.sort_by(f64::total_cmp);
            let truth = exact(&all, q);
            let estimate = merged.quantile(q).unwrap();
            prop_assert!((estimate - truth).abs() <= truth * RELATIVE_ACCURACY + 1e-9, "q={q}: {estimate} vs {truth}");
            prop_assert_eq!(merged.count(), all.len() as u64);
        }
    }
}
