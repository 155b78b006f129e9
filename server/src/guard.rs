//! The guard loop: while a rollout serves its flag on, judge the treatment arm's evidence in
//! the current stage every few seconds (and right after events arrive) with the domain's
//! anytime-valid rules (`app::domain::guard`), roll back by itself when a guardrail breaks,
//! and raise review alerts for sustained trouble. `tick(now)` decides first
//! and then acts, and tests call it directly.
//!
//! One process acts at a time (a Postgres advisory lock held for the tick), and a rollback is
//! an ordinary versioned transition, so a breach seen by two processes rolls back once.

use crate::actors::GUARD_ACTOR;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{GuardLease, Store, StoreError, StoredRollout};
use crate::telemetry::{Telemetry, TickOutcome};
use app::domain::gates::{self, Reference};
use app::domain::guard::{self, Decision};
use app::domain::readiness;
use app::domain::rollout::{Actor, Command, Context, Refusal, Status, apply, served_flag};
use app::domain::units::{Span, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What a tick did, for logs and tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    RolledBack { rollout_id: i64, rule: String },
    Alerted { rollout_id: i64, rule: String },
}

/// The shortest time between two ticks when ingests wake the loop.
const WAKE_GAP: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Guard {
    store: Store,
    metrics: Metrics,
    clock: Clock,
    wake: Arc<Notify>,
    telemetry: Arc<Telemetry>,
}

impl Guard {
    pub fn new(store: Store, metrics: Metrics, clock: Clock) -> Guard {
        Guard { store, metrics, clock, wake: Arc::new(Notify::new()), telemetry: Arc::default() }
    }

    /// Counts ticks, their outcome and duration, and the last tick's time in `telemetry` (the
    /// process's `/metrics` and `/readyz`).
    pub fn reporting(self, telemetry: Arc<Telemetry>) -> Guard {
        Guard { telemetry, ..self }
    }

    /// Wakes the loop early (after an ingest), so a breach is judged within milliseconds.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until the pool closes: a tick every `interval`, or sooner when woken by an ingest
    /// (judge it, but no more often than every [`WAKE_GAP`]).
    pub fn spawn(self, interval: Duration) {
        let (pool, wake) = (self.store.pool().clone(), self.wake.clone());
        crate::background::spawn_loop(pool, interval, WAKE_GAP, wake, move || {
            let guard = self.clone();
            async move {
                match guard.tick((guard.clock)()).await {
                    Ok(Some(actions)) => {
                        for action in actions {
                            tracing::warn!(?action, "guard loop acted");
                        }
                    }
                    // Another process is mid-tick and may have judged before the events that
                    // woke this one arrived: look again once its tick is over, not a timer later.
                    Ok(None) => guard.wake.notify_one(),
                    Err(error) => tracing::warn!(%error, "guard tick failed; retrying next tick"),
                }
            }
        });
    }

    /// One evaluation of every live rollout whose flag is on; `None` when skipped because
    /// another process is ticking.
    #[tracing::instrument(name = "guard_tick", skip_all, fields(now = now.millis()))]
    pub async fn tick(&self, now: Timestamp) -> Result<Option<Vec<Action>>, StoreError> {
        let started = std::time::Instant::now();
        let result = async {
            let Some(mut lease) = self.store.try_guard_lease().await? else { return Ok(None) };
            let result = self.tick_as_leader(&mut lease, now).await;
            release(lease).await;
            result.map(Some)
        }
        .await;
        self.report(&result, started);
        result
    }

    fn report(&self, result: &Result<Option<Vec<Action>>, StoreError>, started: std::time::Instant) {
        let (outcome, actions) = match result {
            Ok(Some(actions)) => (TickOutcome::Judged, actions.as_slice()),
            Ok(None) => (TickOutcome::Skipped, &[][..]),
            Err(_) => (TickOutcome::Failed, &[][..]),
        };
        let rollbacks = actions.iter().filter(|a| matches!(a, Action::RolledBack { .. })).count() as u64;
        let alerts = actions.len() as u64 - rollbacks;
        // The wall clock, not the injected one: the age is read against the wall clock.
        let ended = chrono::Utc::now().timestamp_millis();
        self.telemetry.record_tick(outcome, ended, started.elapsed().as_secs_f64(), rollbacks, alerts);
    }

    /// Like [`Guard::tick`], but waits for a tick in progress elsewhere instead of skipping
    /// (counted in `/metrics` like any tick).
    #[tracing::instrument(name = "guard_tick", skip_all, fields(now = now.millis()))]
    pub async fn tick_now(&self, now: Timestamp) -> Result<Vec<Action>, StoreError> {
        let started = std::time::Instant::now();
        let result = async {
            let mut lease = self.store.guard_lease().await?;
            let result = self.tick_as_leader(&mut lease, now).await;
            release(lease).await;
            result.map(Some)
        }
        .await;
        self.report(&result, started);
        result.map(Option::unwrap_or_default)
    }

    /// Judges every live rollout under `lease`, renewed before each one and before acting on
    /// it: a tick that stalled past the lease's idle limit (another process may hold the guard
    /// now) stops at its next renewal instead of acting beside the new holder.
    async fn tick_as_leader(&self, lease: &mut GuardLease, now: Timestamp) -> Result<Vec<Action>, StoreError> {
        let mut actions = Vec::new();
        let mut seen = Vec::new();
        for live in self.store.live_rollouts(None).await? {
            lease.renew().await?;
            let rollout = self.store.rollout(live.id).await?;
            if !served_flag(&rollout.plan, &rollout.state).enabled || rollout.state.status == Status::Draft {
                self.store.set_holding(live.id, &[], now, now).await?;
            } else {
                actions.extend(self.guard(lease, &rollout, now).await?);
            }
            seen.push(rollout);
        }
        lease.renew().await?;
        // The day's routines, after the decisions: making them never stands in a rollback's way.
        for rollout in seen {
            if matches!(rollout.state.status, Status::Running | Status::Paused | Status::AwaitingApproval | Status::RolledBack) {
                let due = app::domain::routines::due(&rollout.plan, now);
                if let Err(error) = self.store.make_routines(rollout.id, rollout.state.stage, &due).await {
                    tracing::warn!(rollout = rollout.id, %error, "could not make the day's routines");
                }
            }
        }
        Ok(actions)
    }

    #[tracing::instrument(name = "guard_rollout", skip_all, fields(rollout = rollout.id, stage = rollout.state.stage.0))]
    async fn guard(&self, lease: &mut GuardLease, rollout: &StoredRollout, now: Timestamp) -> Result<Vec<Action>, StoreError> {
        let rails = &rollout.plan.guardrails;
        // Everything since the stage began, and only this stage's traffic: what went wrong
        // before a rollback must not roll back the next attempt the moment it starts.
        let from = rollout.state.stage_entered_at.unwrap_or(now);
        let until = Timestamp(now.millis() + 60_000);
        let evidence = self.metrics.stage_evidence(&rollout.plan, rollout.id, rollout.state.stage.0 as i32, from, until).await?;
        // The pull may have waited on a slow metric source: still the guard's before acting.
        lease.renew().await?;
        let rows = &evidence.rows;
        let baseline = self.store.latest_baseline(rollout.id).await?;
        let reference = Reference::choose(baseline.as_ref().map(|b| &b.summary), &rows.control());
        // Timers of this stage only: a condition that held in the stage before starts afresh.
        let sustained: Vec<_> = self.store.sustained(rollout.id).await?.into_iter().filter(|s| s.since >= from).collect();
        let soak = rollout.plan.stage(rollout.state.stage).map_or(Span::ZERO, |s| s.soak);
        let stage = guard::StageEvidence { minutes: &rows.treatment, soak };
        let mut assessment = guard::assess(rails, stage, &reference, &sustained, now);
        // Figures the metric source cannot vouch for decide nothing but a critical error.
        let unvouched = evidence.problem.as_ref().zip(rollout.plan.source_for(rollout.state.stage));
        if let Some((problem, source)) = unvouched {
            assessment = guard::unvouched(assessment, &problem.to_string(), source.alert_after, &sustained, now);
        }
        if let Some(breach) = self.complaints(rollout, now).await? {
            assessment.decisions.push(Decision::Review(breach));
        }
        // The split is checked on units where uploads name them: read only when the check
        // applies, and a failed read falls back to the uploads — it never stands in the way of
        // the rollbacks below.
        let split = match gates::sample_ratio(rails, served_flag(&rollout.plan, &rollout.state), rows, from).filter(|_| unvouched.is_none())
        {
            Some(check) => Some(match self.store.units_seen(rollout.id, rollout.state.stage.0 as i32, check.from).await {
                Ok(units) => check.with_units(Some(units)),
                Err(error) => {
                    tracing::warn!(rollout_id = rollout.id, %error, "could not count the stage's units; judging the split on uploads");
                    check
                }
            }),
            None => None,
        };
        let (holding, review) = guard::sample_ratio_mismatch(split.as_ref(), &sustained, now);
        assessment.holding.extend(holding);
        assessment.decisions.extend(review.map(Decision::Review));
        self.store.set_holding(rollout.id, &assessment.holding, now, from).await?;

        let rollbacks: Vec<_> =
            assessment.decisions.iter().filter_map(|d| if let Decision::RollBack(b) = d { Some(b) } else { None }).collect();
        if !rollbacks.is_empty() {
            let reason = rollbacks.iter().map(|b| b.message.clone()).collect::<Vec<_>>().join("; ");
            let evidence = serde_json::json!({
                "breaches": rollbacks,
                "reference": reference,
                "stage": rollout.state.stage.0,
                "window": { "from": from, "to": now },
                // Where the figures came from: each query, its time and what it counted.
                "source": (!evidence.pulled.is_empty()).then_some(&evidence.pulled),
            });
            let expected = rollout.state.version;
            let command = Command::RollBack { target: rails.rollback_target, reason: reason.clone() };
            let outcome = self
                .store
                .transition(rollout.id, now, GUARD_ACTOR, |current, ev| {
                    let blockers = readiness::blockers(&current.plan, &current.state, ev, now);
                    let cx = Context { plan: &current.plan, now, blockers: &blockers, actor: Actor::machine(GUARD_ACTOR) };
                    let transition = apply(&current.state, expected, &command, &cx)?;
                    let summary = format!(
                        "Rolled back automatically from stage {} “{}”: flag {}",
                        current.state.stage.0,
                        current.plan.stage(current.state.stage).map_or("", |s| s.name.as_str()),
                        served_flag(&current.plan, &transition.state)
                    );
                    let record = crate::store::AuditRecord {
                        action: "auto_roll_back".into(),
                        summary,
                        reason: Some(reason.clone()),
                        evidence,
                        notice: Some(app::domain::webhook::Event::RolledBack),
                    };
                    Ok((transition, record))
                })
                .await;
            match outcome {
                // The stage is over: reviews of it would only ask about what the rollback settled.
                Ok(_) => return Ok(vec![Action::RolledBack { rollout_id: rollout.id, rule: rollbacks[0].rule.clone() }]),
                // Someone (or another process) changed the rollout meanwhile: judge again next tick.
                Err(StoreError::Refused(Refusal::Conflict { .. })) => {}
                Err(StoreError::Refused(refusal)) => tracing::warn!(%refusal, rollout = rollout.id, "guard could not roll back"),
                Err(e) => return Err(e),
            }
        }
        let mut actions = Vec::new();
        for decision in &assessment.decisions {
            if let Decision::Review(breach) = decision {
                let evidence = serde_json::json!({ "breach": breach, "reference": reference });
                let episode = guard::episode_start(breach, &sustained, now);
                if self.store.raise_alert(rollout.id, &breach.rule, &breach.message, evidence, episode, now).await?.is_some() {
                    actions.push(Action::Alerted { rollout_id: rollout.id, rule: breach.rule.clone() });
                }
            }
        }
        Ok(actions)
    }

    /// The complaint trend over the last two hours, judged only once the last hour holds enough
    /// complaints to matter (most ticks stop at one count).
    async fn complaints(&self, rollout: &StoredRollout, now: Timestamp) -> Result<Option<guard::Breach>, StoreError> {
        let period = guard::COMPLAINT_PERIOD.millis();
        let (hour_ago, two_hours_ago) = (Timestamp(now.millis() - period), Timestamp(now.millis() - 2 * period));
        // Up to and including this millisecond.
        let recent = self.store.complaint_count(rollout.id, hour_ago, Timestamp(now.millis() + 1)).await?;
        if recent < guard::COMPLAINT_MIN || !rollout.plan.guardrails.manual_review.on_complaint_rate_rising {
            return Ok(None);
        }
        let earlier = self.store.complaint_count(rollout.id, two_hours_ago, hour_ago).await?;
        let uploads = async |from, to| -> Result<u64, StoreError> {
            let (control, treatment) = self.metrics.arms(rollout.id, None, from, to).await?;
            Ok(control.count() + treatment.count())
        };
        let trend = guard::ComplaintTrend {
            recent,
            recent_uploads: uploads(hour_ago, now).await?,
            earlier,
            earlier_uploads: uploads(two_hours_ago, hour_ago).await?,
        };
        Ok(guard::complaints_rising(&rollout.plan.guardrails, &trend))
    }
}

/// Ends a tick's lease; a lease Postgres already ended (idle too long) is logged, and the tick's
/// own outcome still reported.
async fn release(lease: GuardLease) {
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "could not release the guard's lease (it may have ended while idle)");
    }
}
