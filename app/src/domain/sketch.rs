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
        if value.is_finite() && value > MIN_VALUE {
            let index = Sketch::index(value);
            self.cover(index, index);
            self.bins[(index - self.offset) as usize] += 1;
        } else {
            self.zero += 1;
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
        let rank = (q.clamp(0.0, 1.0) * (count - 1) as f64).floor() as u64;
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

    /// Compact bytes for storage: zero count, then (bin, count) pairs of the used bins,
    /// little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bins.len() * 10);
        out.extend_from_slice(&self.zero.to_le_bytes());
        for (index, count) in self.nonzero() {
            out.extend_from_slice(&(index as i16).to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch, String> {
        if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(10) {
            return Err(format!("a sketch of {} bytes is malformed", bytes.len()));
        }
        let mut sketch = Sketch { zero: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")), offset: 0, bins: Vec::new() };
        let pairs: Vec<(i32, u64)> = bytes[8..]
            .chunks_exact(10)
            .map(|c| (i32::from(i16::from_le_bytes([c[0], c[1]])), u64::from_le_bytes(c[2..10].try_into().expect("8 bytes"))))
            .collect();
        if let (Some(first), Some(last)) = (pairs.iter().map(|p| p.0).min(), pairs.iter().map(|p| p.0).max()) {
            sketch.cover(first, last);
            for (index, count) in pairs {
                sketch.bins[(index - sketch.offset) as usize] += count;
            }
        }
        Ok(sketch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(Sketch::from_bytes(&s.to_bytes()), Ok(s));
        assert!(Sketch::from_bytes(&[1, 2, 3]).is_err());
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
