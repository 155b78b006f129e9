//! The simulator's only randomness: a seeded generator and its draws (uniform, normal,
//! Poisson), and replications spread over threads without depending on their number.

use crate::domain::sequential::ln_gamma;

/// A seeded generator (xoshiro256**, seeded by SplitMix64): the simulator's only randomness.
#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(f64::MIN_POSITIVE), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A Poisson count with mean `mu`: inversion below 30, Hörmann's PTRS (1993) above.
    pub fn poisson(&mut self, mu: f64) -> u64 {
        if mu <= 0.0 {
            return 0;
        }
        if mu < 30.0 {
            let (mut k, mut p) = (0u64, (-mu).exp());
            let (mut cumulative, u) = (p, self.uniform());
            while u > cumulative && k < 1_000 {
                k += 1;
                p *= mu / k as f64;
                cumulative += p;
            }
            return k;
        }
        let b = 0.931 + 2.53 * mu.sqrt();
        let a = -0.059 + 0.024_83 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let v_r = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + mu + 0.43).floor();
            if us >= 0.07 && v <= v_r {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if (v * inv_alpha / (a / (us * us) + b)).ln() <= -mu + k * mu.ln() - ln_gamma(k + 1.0) {
                return k as u64;
            }
        }
    }
}

/// Runs `runs` replications of `one` on `threads` threads; replication `i` draws from
/// `Rng::new(seed ^ i·φ)`, so results do not depend on the number of threads.
pub fn replicate<T: Send>(runs: u64, seed: u64, threads: usize, one: impl Fn(&mut Rng) -> T + Sync) -> Vec<T> {
    let threads = threads.max(1) as u64;
    let mut results: Vec<(u64, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let one = &one;
                scope.spawn(move || {
                    (t..runs)
                        .step_by(threads as usize)
                        .map(|i| (i, one(&mut Rng::new(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a simulation thread panicked")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
