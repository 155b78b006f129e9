//! The rules the simulator runs side by side: the new guard (sequences and change detectors),
//! the old one (a trailing window's point estimates), and the new and old gates.

use super::TICK_SECS;
use crate::domain::gates::{ALPHA_GATE, GATE_N_STAR, wilson};
use crate::domain::guard::{ALPHA_REVIEW, ALPHA_ROLLBACK_CHANGE, ALPHA_ROLLBACK_SEQUENCE, REVIEW_N_STAR, ROLLBACK_N_STAR};
use crate::domain::plan::Guardrails;
use crate::domain::sequential::{ChangeDetector, RateSequence};

/// The new guard's rollback rules, fed tick by tick: the two rates' sequences over the stage
/// and their change detectors, with a start point at every minute boundary; and the success
/// band's review, whose condition must hold for the plan's `success_band_for`. (Critical errors
/// act on a count and are not simulated; memory has a simulator of its own, [`MemoryGuard`].)
#[derive(Clone, Debug)]
pub struct NewGuard {
    pub(super) events: u64,
    pub(super) errors: u64,
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

pub(super) fn gate_sequence(max_pct: f64) -> RateSequence {
    RateSequence::tuned(max_pct / 100.0, ALPHA_GATE, GATE_N_STAR)
}

/// The old gate: a 95% Wilson interval entirely at or below the limit, once the stage's
/// minimum is in.
pub fn old_gate_passes(errors: u64, events: u64, max_pct: f64, min_events: u64) -> bool {
    events >= min_events && wilson(errors, events).is_some_and(|(_, hi)| hi <= max_pct)
}
