//! The calibration simulator: how often the guard and the gates decide wrongly, and how fast
//! they catch a real regression, measured by replaying seeded random traffic through the same
//! rules the server runs. `cargo xtask calibrate` prints the table in `docs/benchmarks.md`;
//! the unit tests below run small versions of it and check that the simulator's rules are the
//! domain's ([`super::guard::assess`], [`super::gates::evaluate`]) tick for tick.
//!
//! Traffic: the treatment arm's uploads arrive as a Poisson process of `per_5min` uploads per
//! five minutes; each tick's errors and successes are independent Poisson counts (Poisson
//! splitting). The guard looks every [`TICK_SECS`] seconds, as the server's loop does; in a
//! regression run both rules look every 200 ms after the change, as the server does when a
//! stream of ingests wakes it (never more often than that). Failures are errors (which both
//! rollback rates count) or timeouts (which only the non-success rate and the review band
//! count), each its own Poisson count. The old rule (a point estimate over the trailing five
//! minutes with at least 50 uploads, and a fixed-sample 95% Wilson interval for the gates) runs
//! on the same stream beside the new one.

use super::gates::{ALPHA_GATE, GATE_N_STAR, wilson};
use super::guard::{ALPHA_REVIEW, ALPHA_ROLLBACK_CHANGE, ALPHA_ROLLBACK_MEMORY, ALPHA_ROLLBACK_SEQUENCE, REVIEW_N_STAR, ROLLBACK_N_STAR};
use super::plan::Guardrails;
use super::sequential::{ChangeDetector, MeanSequence, RateSequence, ln_gamma};

/// How often the guard loop looks (the default plan's interval).
pub const TICK_SECS: u64 = 5;

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

    fn next_u64(&mut self) -> u64 {
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

/// The new guard's rollback rules, fed tick by tick: the two rates' sequences over the stage
/// and their change detectors, with a start point at every minute boundary; and the success
/// band's review, whose condition must hold for the plan's `success_band_for`. (Critical errors
/// act on a count and are not simulated; memory has a simulator of its own, [`MemoryGuard`].)
#[derive(Clone, Debug)]
pub struct NewGuard {
    events: u64,
    errors: u64,
    failures: u64,
    error_line: f64,
    failure_line: f64,
    error_sequence: RateSequence,
    failure_sequence: RateSequence,
    error_detector: ChangeDetector,
    failure_detector: ChangeDetector,
    band_top: f64,
    band: RateSequence,
    band_for_secs: u64,
    /// Since when (seconds into the stage) the band's condition has held, as the server's timer.
    band_since: Option<u64>,
}

impl NewGuard {
    pub fn new(rails: &Guardrails, soak_secs: u64) -> NewGuard {
        let error_line = rails.auto_rollback.error_rate_above.get() / 100.0;
        let failure_line = 1.0 - rails.auto_rollback.success_rate_below.get() / 100.0;
        let starts = (soak_secs / 60).max(60);
        let band_top = 1.0 - rails.manual_review.success_band[1].get() / 100.0;
        NewGuard {
            events: 0,
            errors: 0,
            failures: 0,
            error_line,
            failure_line,
            error_sequence: RateSequence::tuned(error_line, ALPHA_ROLLBACK_SEQUENCE, ROLLBACK_N_STAR),
            failure_sequence: RateSequence::tuned(failure_line, ALPHA_ROLLBACK_SEQUENCE, ROLLBACK_N_STAR),
            error_detector: ChangeDetector::new(error_line, ALPHA_ROLLBACK_CHANGE, starts),
            failure_detector: ChangeDetector::new(failure_line, ALPHA_ROLLBACK_CHANGE, starts),
            band_top,
            band: RateSequence::tuned(band_top, ALPHA_REVIEW, REVIEW_N_STAR),
            band_for_secs: rails.manual_review.success_band_for.secs().max(0) as u64,
            band_since: None,
        }
    }

    /// A minute boundary: a possible start of a change.
    pub fn minute(&mut self) {
        self.error_detector.start_here();
        self.failure_detector.start_here();
    }

    pub fn add(&mut self, errors: u64, timeouts: u64, events: u64) {
        self.events += events;
        self.errors += errors;
        self.failures += errors + timeouts;
        self.error_detector.add(errors, events);
        self.failure_detector.add(errors + timeouts, events);
    }

    pub fn rolls_back(&self) -> bool {
        self.error_sequence.proves_above(self.errors, self.events, self.error_line)
            || self.failure_sequence.proves_above(self.failures, self.events, self.failure_line)
            || self.error_detector.alarmed()
            || self.failure_detector.alarmed()
    }

    /// Whether the success band's condition holds: failures proven above the band's top.
    pub fn band_holds(&self) -> bool {
        self.band.proves_above(self.failures, self.events, self.band_top)
    }

    /// The guard's look at `secs` into the stage: keeps the band's timer as the server does,
    /// and says whether the review is due (the condition has held for `success_band_for`).
    pub fn reviews_at(&mut self, secs: u64) -> bool {
        if !self.band_holds() {
            self.band_since = None;
            return false;
        }
        let since = *self.band_since.get_or_insert(secs);
        secs - since >= self.band_for_secs
    }
}

/// The old rule's trailing window and minimum sample (the default plan's `window` and
/// `min_sample` then).
const OLD_WINDOW_SECS: u64 = 300;
const OLD_MIN_SAMPLE: u64 = 50;

/// The rule the guard ran before: rates over the trailing five minutes, judged once the window
/// holds 50 uploads.
#[derive(Clone, Debug)]
pub struct OldGuard {
    /// Per tick of the window: (errors, failures, events), and their sums.
    ticks: std::collections::VecDeque<(u64, u64, u64)>,
    sums: (u64, u64, u64),
    window_ticks: usize,
    min_sample: u64,
    success_below: f64,
    error_above: f64,
}

impl OldGuard {
    pub fn new(rails: &Guardrails) -> OldGuard {
        OldGuard {
            ticks: Default::default(),
            sums: (0, 0, 0),
            window_ticks: (OLD_WINDOW_SECS / TICK_SECS) as usize,
            min_sample: OLD_MIN_SAMPLE,
            success_below: rails.auto_rollback.success_rate_below.get(),
            error_above: rails.auto_rollback.error_rate_above.get(),
        }
    }

    /// One tick's uploads; the window moves on by one tick.
    pub fn tick(&mut self, errors: u64, timeouts: u64, events: u64) {
        if self.ticks.len() == self.window_ticks
            && let Some((e, f, n)) = self.ticks.pop_front()
        {
            self.sums = (self.sums.0 - e, self.sums.1 - f, self.sums.2 - n);
        }
        self.ticks.push_back((errors, errors + timeouts, events));
        self.sums = (self.sums.0 + errors, self.sums.1 + errors + timeouts, self.sums.2 + events);
    }

    /// Uploads that arrived within the newest tick.
    pub fn add_to_newest_tick(&mut self, errors: u64, timeouts: u64, events: u64) {
        if let Some(newest) = self.ticks.back_mut() {
            *newest = (newest.0 + errors, newest.1 + errors + timeouts, newest.2 + events);
            self.sums = (self.sums.0 + errors, self.sums.1 + errors + timeouts, self.sums.2 + events);
        } else {
            self.tick(errors, timeouts, events);
        }
    }

    pub fn rolls_back(&self) -> bool {
        let (errors, failures, n) = self.sums;
        n >= self.min_sample
            && (100.0 - (failures as f64) * 100.0 / (n as f64) < self.success_below
                || (errors as f64) * 100.0 / (n as f64) > self.error_above)
    }
}

/// Whether the error-rate gate shows "pass" for `errors` of `events` against `max_pct`.
pub fn gate_passes(errors: u64, events: u64, max_pct: f64) -> bool {
    let p0 = max_pct / 100.0;
    gate_sequence(max_pct).proves_below(errors, events, p0)
}

fn gate_sequence(max_pct: f64) -> RateSequence {
    RateSequence::tuned(max_pct / 100.0, ALPHA_GATE, GATE_N_STAR)
}

/// The old gate: a 95% Wilson interval entirely at or below the limit, once the stage's
/// minimum is in.
pub fn old_gate_passes(errors: u64, events: u64, max_pct: f64, min_events: u64) -> bool {
    events >= min_events && wilson(errors, events).is_some_and(|(_, hi)| hi <= max_pct)
}

/// One 5-second tick of traffic at `rates`, fed to both rules (a minute boundary first, every
/// twelfth tick). Returns the tick's uploads.
fn feed_tick(rng: &mut Rng, new: &mut NewGuard, old: &mut OldGuard, tick: u64, mu: f64, rates: Rates) -> u64 {
    if tick.is_multiple_of(60 / TICK_SECS) {
        new.minute();
    }
    let (errors, timeouts, events) = rates.draw(rng, mu);
    new.add(errors, timeouts, events);
    old.tick(errors, timeouts, events);
    events
}

/// A treatment's error and timeout rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub error: f64,
    pub timeout: f64,
}

impl Rates {
    pub const fn errors(error: f64) -> Rates {
        Rates { error, timeout: 0.0 }
    }

    /// Errors, timeouts and uploads in a slot whose uploads average `mu`: independent Poisson
    /// counts (Poisson splitting).
    fn draw(self, rng: &mut Rng, mu: f64) -> (u64, u64, u64) {
        let errors = rng.poisson(mu * self.error);
        let timeouts = rng.poisson(mu * self.timeout);
        (errors, timeouts, errors + timeouts + rng.poisson(mu * (1.0 - self.error - self.timeout)))
    }
}

/// One A/A cell: a stage whose treatment fails at exactly `rates` all soak long.
#[derive(Clone, Copy, Debug)]
pub struct Steady {
    pub per_5min: f64,
    pub soak_secs: u64,
    pub rates: Rates,
    /// The stage's error gate (percent) and minimum uploads.
    pub gate_max_pct: f64,
    pub min_events: u64,
}

/// Replications in which each rule rolled back, and in which each error gate showed "pass".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteadyOutcome {
    pub runs: u64,
    pub new_rollbacks: u64,
    pub old_rollbacks: u64,
    pub new_passes: u64,
    pub old_passes: u64,
    /// Replications in which the success band's review came due.
    pub new_reviews: u64,
    /// Treatment uploads over all runs (for the mean per run).
    pub events: u64,
}

impl SteadyOutcome {
    pub fn add(&mut self, other: SteadyOutcome) {
        self.runs += other.runs;
        self.new_rollbacks += other.new_rollbacks;
        self.old_rollbacks += other.old_rollbacks;
        self.new_passes += other.new_passes;
        self.old_passes += other.old_passes;
        self.new_reviews += other.new_reviews;
        self.events += other.events;
    }
}

/// Runs one replication of a steady cell.
pub fn steady_run(rails: &Guardrails, cell: &Steady, rng: &mut Rng) -> SteadyOutcome {
    let mu = cell.per_5min * TICK_SECS as f64 / 300.0;
    let (mut new, mut old) = (NewGuard::new(rails, cell.soak_secs), OldGuard::new(rails));
    let mut out = SteadyOutcome { runs: 1, ..Default::default() };
    let (mut new_back, mut old_back, mut new_pass, mut old_pass, mut review) = (false, false, false, false, false);
    let gate = gate_sequence(cell.gate_max_pct);
    let gate_line = cell.gate_max_pct / 100.0;
    for tick in 0..cell.soak_secs / TICK_SECS {
        let events = feed_tick(rng, &mut new, &mut old, tick, mu, cell.rates);
        // The band's timer runs on every look, uploads or not.
        review |= new.reviews_at(tick * TICK_SECS);
        if events == 0 && tick > 0 {
            // Nothing new: every verdict stands as it was (the old window still moves).
            old_back |= !old_back && old.rolls_back();
            continue;
        }
        new_back |= !new_back && new.rolls_back();
        old_back |= !old_back && old.rolls_back();
        if !new_pass || !old_pass {
            new_pass |= gate.proves_below(new.errors, new.events, gate_line);
            old_pass |= old_gate_passes(new.errors, new.events, cell.gate_max_pct, cell.min_events);
        }
    }
    out.events = new.events;
    out.new_rollbacks = u64::from(new_back);
    out.old_rollbacks = u64::from(old_back);
    out.new_passes = u64::from(new_pass);
    out.old_passes = u64::from(old_pass);
    out.new_reviews = u64::from(review);
    out
}

/// One regression cell: healthy at `healthy_rate` until `change_secs`, then `bad_rate`.
#[derive(Clone, Copy, Debug)]
pub struct Regression {
    pub per_5min: f64,
    /// The stage's soak: the change detector allows for a change at any of its minutes.
    pub stage_soak_secs: u64,
    /// How long to simulate from the stage's start.
    pub until_secs: u64,
    pub healthy: Rates,
    pub change_secs: u64,
    pub bad: Rates,
}

/// Treatment uploads from the change to the rollback (inclusive) and the milliseconds it took;
/// `None` when the rule never rolled back within the soak. Also whether a rule rolled back
/// before the change (a false rollback; such a run counts as not detecting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detection {
    pub new: Option<(u64, u64)>,
    pub old: Option<(u64, u64)>,
    pub new_early: bool,
    pub old_early: bool,
}

/// Runs one replication of a regression cell. Before the change the rules' state is built in
/// ticks; after it the guard looks every 200 ms (ingest wakes it).
pub fn regression_run(rails: &Guardrails, cell: &Regression, rng: &mut Rng) -> Detection {
    let (mut new, mut old) = (NewGuard::new(rails, cell.stage_soak_secs), OldGuard::new(rails));
    let mut out = Detection::default();
    let tick_mu = cell.per_5min * TICK_SECS as f64 / 300.0;
    // A change in a running stage starts anywhere in its minute (the detector's start points are
    // minute boundaries, so the part-minute before the next one counts against it); a change
    // from the stage's start is the stage's first upload.
    let change_secs = if cell.change_secs == 0 { 0 } else { cell.change_secs + TICK_SECS * (rng.next_u64() % (60 / TICK_SECS)) };
    for tick in 0..change_secs / TICK_SECS {
        let events = feed_tick(rng, &mut new, &mut old, tick, tick_mu, cell.healthy);
        if events > 0 {
            out.new_early |= new.rolls_back();
            out.old_early |= old.rolls_back();
        }
    }
    // After the change both rules look every 200 ms (ingest wakes the guard no more often than
    // that); the old rule's window moves on 5-second ticks, its newest tick filling as it goes.
    const SLOTS_PER_SEC: u64 = 5;
    let slot_mu = cell.per_5min / 300.0 / SLOTS_PER_SEC as f64;
    let slots_per_tick = TICK_SECS * SLOTS_PER_SEC;
    let mut seen = 0u64;
    for slot in change_secs * SLOTS_PER_SEC..cell.until_secs * SLOTS_PER_SEC {
        if slot.is_multiple_of(60 * SLOTS_PER_SEC) {
            new.minute();
        }
        if slot.is_multiple_of(slots_per_tick) {
            old.tick(0, 0, 0);
        }
        let (errors, timeouts, events) = cell.bad.draw(rng, slot_mu);
        if events == 0 {
            continue;
        }
        seen += events;
        new.add(errors, timeouts, events);
        old.add_to_newest_tick(errors, timeouts, events);
        // Milliseconds since the change, at the end of this slot.
        let elapsed_ms = (slot + 1 - change_secs * SLOTS_PER_SEC) * (1000 / SLOTS_PER_SEC);
        if out.old.is_none() && !out.old_early && old.rolls_back() {
            out.old = Some((seen, elapsed_ms));
        }
        if out.new.is_none() && !out.new_early && new.rolls_back() {
            out.new = Some((seen, elapsed_ms));
        }
        if (out.new.is_some() || out.new_early) && (out.old.is_some() || out.old_early) {
            break;
        }
    }
    out
}

/// The guard's memory rule, fed reading by reading: the confidence sequence of the stage's mean
/// memory per upload (α [`ALPHA_ROLLBACK_MEMORY`]) rolls back when its lower end is above the
/// line (the plan's `memory_above_baseline` of the reference's mean), once the plan's
/// `min_sample` uploads are in.
#[derive(Clone, Copy, Debug)]
pub struct MemoryGuard {
    n: u64,
    sum: f64,
    sq_sum: f64,
    line: f64,
    min_sample: u64,
    sequence: MeanSequence,
}

impl MemoryGuard {
    /// The rule against a reference mean of `base_mb`.
    pub fn new(rails: &Guardrails, base_mb: f64) -> MemoryGuard {
        MemoryGuard {
            n: 0,
            sum: 0.0,
            sq_sum: 0.0,
            line: base_mb * rails.auto_rollback.memory_above_baseline.get() / 100.0,
            min_sample: u64::from(rails.min_sample),
            sequence: MeanSequence::tuned(ALPHA_ROLLBACK_MEMORY, ROLLBACK_N_STAR),
        }
    }

    /// The rollback line, in MB.
    pub fn line(&self) -> f64 {
        self.line
    }

    pub fn add(&mut self, memory_mb: f64) {
        self.n += 1;
        self.sum += memory_mb;
        self.sq_sum += memory_mb * memory_mb;
    }

    pub fn rolls_back(&self) -> bool {
        self.n >= self.min_sample && self.sequence.interval(self.n, self.sum, self.sq_sum).is_some_and(|i| i.lo > self.line)
    }
}

/// One memory cell: a treatment whose memory per upload has its mean exactly at the rollback
/// line all soak long, the readings log-normal with shape `sigma` (0.25: near-constant; 1:
/// skewed, the mean 1.65× the median, as file sizes make it).
#[derive(Clone, Copy, Debug)]
pub struct MemorySteady {
    pub per_5min: f64,
    pub soak_secs: u64,
    pub sigma: f64,
}

/// Runs one replication of a memory cell, the guard looking every tick that brought uploads:
/// whether it rolled back, and the uploads it saw.
pub fn memory_run(rails: &Guardrails, cell: &MemorySteady, rng: &mut Rng) -> (bool, u64) {
    let mut guard = MemoryGuard::new(rails, 100.0);
    // exp(σZ − σ²/2) has mean 1.
    let (scale, shift) = (guard.line(), -cell.sigma * cell.sigma / 2.0);
    let mu = cell.per_5min * TICK_SECS as f64 / 300.0;
    for _ in 0..cell.soak_secs / TICK_SECS {
        let uploads = rng.poisson(mu);
        if uploads == 0 {
            continue;
        }
        for _ in 0..uploads {
            guard.add(scale * (cell.sigma * rng.normal() + shift).exp());
        }
        if guard.rolls_back() {
            return (true, guard.n);
        }
    }
    (false, guard.n)
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

/// The 95% Wilson interval of `k` of `n`, as fractions, for reporting simulated rates.
pub fn rate_interval(k: u64, n: u64) -> (f64, f64) {
    wilson(k, n).map_or((0.0, 1.0), |(lo, hi)| (lo / 100.0, hi / 100.0))
}

#[cfg(test)]
mod tests;
