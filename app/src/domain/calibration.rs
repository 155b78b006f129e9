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

use super::gates::wilson;
use super::guard::{ALPHA_ROLLBACK_MEMORY, ROLLBACK_N_STAR};
use super::plan::Guardrails;
use super::sequential::MeanSequence;

mod rng;
mod rules;

pub use rng::{Rng, replicate};
use rules::gate_sequence;
pub use rules::{NewGuard, OldGuard, gate_passes, old_gate_passes};

/// How often the guard loop looks (the default plan's interval).
pub const TICK_SECS: u64 = 5;

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

/// The 95% Wilson interval of `k` of `n`, as fractions, for reporting simulated rates.
pub fn rate_interval(k: u64, n: u64) -> (f64, f64) {
    wilson(k, n).map_or((0.0, 1.0), |(lo, hi)| (lo / 100.0, hi / 100.0))
}

#[cfg(test)]
mod tests;
