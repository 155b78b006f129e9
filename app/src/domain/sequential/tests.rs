//! Tests of `sequential.rs`: the anytime-valid statistics.

use super::*;

/// ln Γ by Stirling's series, an independent computation for large x.
fn stirling(x: f64) -> f64 {
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x.powi(3))
        + 1.0 / (1260.0 * x.powi(5))
}

#[test]
fn ln_gamma_matches_factorials_and_stirling() {
    let mut factorial = 1.0_f64;
    for n in 1..30 {
        assert!((ln_gamma(n as f64) - factorial.ln()).abs() < 1e-12 * factorial.ln().max(1.0), "Γ({n})");
        factorial *= n as f64;
    }
    assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
    // Γ(0.001) ≈ 999.4237725 (tables).
    assert!((ln_gamma(0.001) - 999.423_772_484_595_5_f64.ln()).abs() < 1e-9);
    for x in [50.0, 1e3, 1e5, 1e7] {
        assert!((ln_gamma(x) - stirling(x)).abs() < 1e-9 * stirling(x).abs().max(1.0), "x = {x}");
    }
}

/// `ln M_n(p)` by integrating the mixture over the prior numerically (Simpson's rule on a
/// fine grid): a computation that shares no code with the closed form.
fn ln_evidence_by_integration(s: &RateSequence, k: u64, n: u64, p: f64) -> f64 {
    let steps = 200_000;
    let ln_norm = ln_beta(s.a, s.b);
    let f = |q: f64| {
        if q <= 0.0 || q >= 1.0 {
            return 0.0;
        }
        let ln = (s.a - 1.0) * q.ln() + (s.b - 1.0) * (1.0 - q).ln() - ln_norm + log_likelihood(k, n, q) - log_likelihood(k, n, p);
        ln.exp()
    };
    let h = 1.0 / steps as f64;
    let sum: f64 = (0..=steps)
        .map(|i| {
            let w = if i == 0 || i == steps {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            w * f(i as f64 * h)
        })
        .sum();
    (sum * h / 3.0).ln()
}

#[test]
fn the_closed_form_equals_the_integrated_mixture() {
    // A prior with a ≥ 1 so the integrand is bounded and Simpson's rule converges.
    let s = RateSequence::tuned(0.3, 0.05, 200.0);
    assert!(s.a > 1.0 && s.b > 1.0, "{s:?}");
    for (k, n, p) in [(3, 10, 0.3), (30, 60, 0.3), (0, 40, 0.2), (50, 120, 0.6), (12, 12, 0.5)] {
        let (closed, integrated) = (s.ln_evidence(k, n, p), ln_evidence_by_integration(&s, k, n, p));
        assert!((closed - integrated).abs() < 1e-6, "k={k} n={n} p={p}: {closed} vs {integrated}");
    }
}

/// The fewest events at a steady rate `p` (k = p·n rounded) after which the sequence puts
/// the rate on `side` of `p0`.
fn events_to_decide(s: &RateSequence, p: f64, p0: f64, side: Side) -> u64 {
    (1..200_000).find(|&n| s.side((p * n as f64).round() as u64, n, p0) == side).unwrap()
}

#[test]
fn events_to_decide_match_the_published_reference_values() {
    // Two independent computations of the same figures: STATISTICS.md §4's reference table
    // (within 1%), and Python's `math.lgamma` over the same definition with k rounded half
    // up (exactly; the script is in docs/statistics.md).
    let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= 0.01 * want as f64;
    let cases = [
        // (p0, α, n*, true rate, side, brief, python)
        (0.05, 0.0045, 1e3, 0.075, Side::Above, 1_260, 1_260),
        (0.05, 0.0045, 1e3, 0.10, Side::Above, 355, 355),
        (0.05, 0.0045, 1e3, 0.30, Side::Above, 39, 39),
        (0.005, 0.0033, 1e4, 0.05, Side::Above, 211, 210),
        (0.005, 0.0033, 1e4, 0.10, Side::Above, 95, 95),
        (0.005, 0.0033, 1e4, 0.30, Side::Above, 29, 29),
        (0.005, 0.0033, 1e4, 0.0, Side::Below, 2_125, 2_127),
        (0.005, 0.0033, 1e4, 0.001, Side::Below, 3_256, 3_256),
        (0.005, 0.0033, 1e4, 0.0025, Side::Below, 9_316, 9_321),
    ];
    for (p0, alpha, n_star, p, side, brief, python) in cases {
        let got = events_to_decide(&RateSequence::tuned(p0, alpha, n_star), p, p0, side);
        assert_eq!(got, python, "{p} against {p0}: {got} events, Python {python}");
        assert!(close(got, brief), "{p} against {p0}: {got} events, the brief {brief}");
    }
}

#[test]
fn the_interval_is_where_the_evidence_is_below_the_boundary() {
    let s = RateSequence::tuned(0.05, 0.01, 1e3);
    assert_eq!(s.interval(0, 0), (0.0, 1.0));
    for (k, n) in [(0, 50), (5, 100), (50, 1_000), (700, 1_000), (1_000, 1_000), (12, 100_000)] {
        let (lo, hi) = s.interval(k, n);
        let p_hat = k as f64 / n as f64;
        assert!(lo <= p_hat && p_hat <= hi, "{k}/{n}: {lo}–{hi}");
        if k > 0 {
            assert!(s.ln_evidence(k, n, lo) >= s.boundary() - 1e-6 && s.ln_evidence(k, n, lo * 1.001 + 1e-9) < s.boundary());
        } else {
            assert_eq!(lo, 0.0);
        }
        if k < n {
            assert!(s.ln_evidence(k, n, hi) >= s.boundary() - 1e-6, "{k}/{n} hi {hi}");
        } else {
            assert_eq!(hi, 1.0);
        }
        // The interval and `side` agree.
        assert_eq!(s.side(k, n, (hi + 1.0) / 2.0), if hi < 1.0 { Side::Below } else { Side::Unknown });
    }
    // Wider than the fixed-sample 99% Wilson interval: the price of looking at every moment.
    let (lo, hi) = s.interval(50, 1_000);
    assert!(lo < 0.0346 && hi > 0.0712, "{lo}–{hi}");
}

/// A deterministic generator for simulations in tests (SplitMix64).
pub(crate) struct TestRng(pub u64);

impl TestRng {
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The sequence's promise, checked by simulation: watched after every single event, a
/// rate sitting exactly on the threshold is proven past it in at most α of runs. (A 95%
/// Wilson interval watched the same way crosses in far more.)
#[test]
fn watched_after_every_event_the_sequence_keeps_its_error_rate() {
    let (p, alpha, runs, events) = (0.05, 0.05, 400, 2_000);
    let s = RateSequence::tuned(p, alpha, 1e3);
    let mut rng = TestRng(7);
    let (mut crossed, mut wilson_crossed) = (0, 0);
    for _ in 0..runs {
        let (mut k, mut hit, mut wilson_hit) = (0, false, false);
        for n in 1..=events {
            k += u64::from(rng.uniform() < p);
            hit |= s.side(k, n, p) != Side::Unknown;
            if let Some((lo, hi)) = crate::domain::gates::wilson(k, n) {
                wilson_hit |= n >= 50 && (lo > p * 100.0 || hi < p * 100.0);
            }
        }
        crossed += u64::from(hit);
        wilson_crossed += u64::from(wilson_hit);
    }
    let rate = crossed as f64 / runs as f64;
    assert!(rate <= alpha, "sequence crossed in {crossed} of {runs} runs");
    assert!(wilson_crossed as f64 / runs as f64 > 3.0 * alpha, "Wilson crossed in only {wilson_crossed} of {runs}");
}

#[test]
fn the_arm_difference_matches_an_independent_computation_and_covers_under_peeking() {
    // Python, from the formula in the brief: (estimate, lo, hi) at α = 5%, n* = 10,000.
    let cases = [
        ((30, 1_000, 20, 1_000), (0.01, -0.013_691_240_074_698_637, 0.033_691_240_074_698_63)),
        ((5, 500, 50, 5_000), (0.0, -0.014_953_200_304_279_211, 0.014_953_200_304_279_211)),
        ((0, 100, 0, 900), (0.0, -0.027_225_566_492_293_938, 0.027_225_566_492_293_938)),
        ((300, 10_000, 100, 10_000), (0.02, 0.013_946_925_609_573_443, 0.026_053_074_390_426_55)),
    ];
    for ((kt, nt, kc, nc), (estimate, lo, hi)) in cases {
        let d = rate_difference(kt, nt, kc, nc, 0.05, 1e4).unwrap();
        assert!((d.estimate - estimate).abs() < 1e-12 && (d.lo - lo).abs() < 1e-12 && (d.hi - hi).abs() < 1e-12, "{d:?}");
    }
    assert_eq!(rate_difference(1, 0, 1, 10, 0.05, 1e4), None);
    // Two arms at the same 5% rate, looked at after every 100 events per arm up to 10,000:
    // the interval leaves 0 in at most α of runs (5%, with the simulation's noise).
    let mut rng = TestRng(21);
    let runs = 300;
    let excluded = (0..runs)
        .filter(|_| {
            let (mut kt, mut kc) = (0, 0);
            (1..=10_000u64).any(|n| {
                kt += u64::from(rng.uniform() < 0.05);
                kc += u64::from(rng.uniform() < 0.05);
                n % 100 == 0 && rate_difference(kt, n, kc, n, 0.05, 1e4).is_some_and(|d| d.lo > 0.0 || d.hi < 0.0)
            })
        })
        .count();
    assert!(excluded <= runs * 8 / 100, "{excluded} of {runs}");
}

#[test]
fn the_mean_sequence_matches_an_independent_computation_and_covers_skewed_readings() {
    // Python, from the formula (Waudby-Smith et al. 2023, as in the brief) with the
    // readings' sample standard deviation: (n, sum, sum of squares, α a side, n*) → half-width.
    let cases = [
        ((100, 5_000.0, 259_900.0, 0.025, 1e4), 9.084_379_437_310_579),
        ((100, 5_000.0, 259_900.0, 0.001, 1e3), 4.714_711_829_747_56),
        // The readings 2, 4, 6, 8.
        ((4, 20.0, 120.0, 0.025, 1e4), 56.189_981_456_117_83),
    ];
    for ((n, sum, sq_sum, alpha, n_star), half) in cases {
        let i = MeanSequence::tuned(alpha, n_star).interval(n, sum, sq_sum).unwrap();
        let mean = sum / n as f64;
        assert!((i.mean - mean).abs() < 1e-12 && (i.hi - mean - half).abs() < 1e-9 && (mean - i.lo - half).abs() < 1e-9, "{i:?}");
    }
    assert_eq!(MeanSequence::tuned(0.025, 1e4).interval(1, 5.0, 25.0), None);
    // Equal readings: no spread, no width (and never a negative variance from rounding).
    let same = MeanSequence::tuned(0.025, 1e4).interval(3, 0.3, 0.03).unwrap();
    assert!((same.hi - same.lo).abs() < 1e-6, "{same:?}");

    // Skewed readings (log-normal, σ = 1: the mean is 1.65× the median), watched every 10
    // readings from the 50th to the 5,000th: each end excludes the true mean at some look in
    // at most α of runs (2.5% a side here; with the simulation's noise, 4%).
    let mut rng = TestRng(33);
    let mut normal = || {
        let (u, v) = (rng.uniform().max(1e-300), rng.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let truth = (3.0f64 + 0.5).exp();
    let sequence = MeanSequence::tuned(0.025, 1e4);
    let (runs, mut above, mut below) = (400, 0, 0);
    for _ in 0..runs {
        let (mut sum, mut sq_sum) = (0.0, 0.0);
        let (mut was_above, mut was_below) = (false, false);
        for n in 1..=5_000u64 {
            let x = (3.0 + normal()).exp();
            sum += x;
            sq_sum += x * x;
            if n >= 50 && n % 10 == 0 {
                let i = sequence.interval(n, sum, sq_sum).unwrap();
                was_above |= i.lo > truth;
                was_below |= i.hi < truth;
            }
        }
        above += u64::from(was_above);
        below += u64::from(was_below);
    }
    assert!(above <= runs * 4 / 100 && below <= runs * 4 / 100, "above {above}, below {below} of {runs}");
}

#[test]
fn the_change_detector_sums_every_windows_likelihood_ratio() {
    // 60 events, a start point every 10, bad ones late: the statistic recomputed directly
    // as Σ over starts of Π over the events since of q/p0 (bad) or (1−q)/(1−p0) (good),
    // weighted over the alternatives 10% (0.8) and 30% (0.2), in plain (not log) arithmetic.
    let bad = |i: usize| (i % 7 == 3) || (i >= 40 && i.is_multiple_of(3));
    let mut detector = ChangeDetector::new(0.05, 0.01, 100);
    for i in 0..60 {
        if i % 10 == 0 {
            detector.start_here();
        }
        detector.add(u64::from(bad(i)), 1);
    }
    let direct: f64 = [(0.1f64, 0.8), (0.3, 0.2)]
        .iter()
        .map(|(q, w)| {
            w * (0..60).step_by(10).map(|s| (s..60).map(|i| if bad(i) { q / 0.05 } else { (1.0 - q) / 0.95 }).product::<f64>()).sum::<f64>()
        })
        .sum::<f64>();
    assert!((detector.statistic() - direct.ln()).abs() < 1e-9, "{} vs {}", detector.statistic(), direct.ln());
    let window = detector.strongest().unwrap();
    assert!((window.threshold - (100.0f64 / 0.01).ln()).abs() < 1e-12, "the bound is ln(starts / α)");
    assert_eq!(window.statistic, detector.statistic());
    // The strongest single window is the CUSUM's: the start and alternative whose ratio
    // since is largest, found here by trying them all.
    let ln_ratio = |s: usize, q: f64| (s..60).map(|i| if bad(i) { (q / 0.05f64).ln() } else { ((1.0 - q) / 0.95f64).ln() }).sum::<f64>();
    let best =
        (0..60).step_by(10).flat_map(|s| [(s, 0.1), (s, 0.3)]).max_by(|a, b| ln_ratio(a.0, a.1).total_cmp(&ln_ratio(b.0, b.1))).unwrap();
    let bad_since = (best.0..60).filter(|&i| bad(i)).count() as u64;
    assert_eq!((window.events_before, window.events, window.bad), (best.0 as u64, 60 - best.0 as u64, bad_since));
    assert!((window.alternative - best.1).abs() < 1e-12);
    assert_eq!(detector.alarmed(), detector.statistic() >= window.threshold);
}

#[test]
fn the_change_detector_finds_a_late_regression_and_keeps_quiet_at_the_line() {
    let mut rng = TestRng(11);
    // 2,880 starts: a 48-hour soak's minutes.
    let detector = || ChangeDetector::new(0.05, 0.003, 2_880);
    let alternatives = detector().alternatives;
    assert!(alternatives.len() == 2 && (alternatives[0] - 0.1).abs() < 1e-12 && (alternatives[1] - 0.3).abs() < 1e-12);
    // 20,000 healthy events, then 30% bad: found within a few dozen bad-regime events,
    // and its window starts near the change.
    let mut d = detector();
    for i in 0..20_000 {
        if i % 20 == 0 {
            d.start_here();
        }
        d.add(u64::from(rng.uniform() < 0.005), 1);
    }
    assert!(!d.alarmed());
    let mut after = 0;
    while !d.alarmed() {
        if after % 20 == 0 {
            d.start_here();
        }
        d.add(u64::from(rng.uniform() < 0.3), 1);
        after += 1;
    }
    let window = d.strongest().unwrap();
    assert!(after < 120, "{after} events after the change");
    assert!(window.events_before >= 19_980 && window.events <= after + 20, "{window:?}");
    // At exactly the line, 100 runs of 20,000 events: no alarm is the rule (α = 0.3%).
    let alarms = (0..100)
        .filter(|_| {
            let mut d = detector();
            (0..20_000).any(|i| {
                if i % 20 == 0 {
                    d.start_here();
                }
                d.add(u64::from(rng.uniform() < 0.05), 1);
                d.alarmed()
            })
        })
        .count();
    assert!(alarms <= 2, "{alarms} false alarms in 100 runs");
}

#[test]
fn srm_flags_a_skewed_split_and_not_a_fair_one() {
    // Lindon & Malek's Dirichlet Bayes factor, recomputed here from its definition with
    // Γ products for small counts: 3 vs 7 at 50/50, κ = 100.
    let direct = {
        let g = |x: f64| ln_gamma(x);
        let ln_bf = g(100.0) - g(110.0) + (g(53.0) - g(50.0) - 3.0 * 0.5f64.ln()) + (g(57.0) - g(50.0) - 7.0 * 0.5f64.ln());
        (-ln_bf).exp().min(1.0)
    };
    assert!((srm_p_value(&[3, 7], &[0.5, 0.5]) - direct).abs() < 1e-12);
    assert_eq!(srm_p_value(&[0, 0], &[0.9, 0.1]), 1.0);
    assert!(srm_p_value(&[9_000, 1_000], &[0.9, 0.1]) > 0.1);
    assert!(srm_p_value(&[9_300, 700], &[0.9, 0.1]) < 0.001);
    assert_eq!(srm_p_value(&[10, 1], &[1.0, 0.0]), 0.0);
    // Under the planned split, the p-value falls below 1% in at most 1% of runs even
    // when looked at after every event.
    let mut rng = TestRng(3);
    let low = (0..300)
        .filter(|_| {
            let mut counts = [0u64; 2];
            (0..3_000).any(|_| {
                counts[usize::from(rng.uniform() < 0.1)] += 1;
                srm_p_value(&counts, &[0.9, 0.1]) < 0.01
            })
        })
        .count();
    assert!(low <= 3, "{low} of 300");
}
