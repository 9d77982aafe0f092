//! One monitor tick: read, decide, publish, respond.
//!
//! The monitor thread drives a [`MonitorCore`] with the real clock; tests
//! drive it with their own through [`Ticker`](super::Ticker).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mempressure_alloc::MAX_COMPONENTS;

use super::sample::{decide_usage, Sample, Sampler, Usage};
use super::{MonitorReading, Shared};
use crate::level::{PressureLevel, Reason, Transition, UsageSource};
use crate::machine::{LevelChange, LevelMachine};
use crate::reclaim::Urgency;

/// How many components a transition's reason names.
const TOP_COMPONENTS: usize = 3;
/// jemalloc's resident but unallocated bytes worth a purge: over a fiftieth
/// (2 %) of the limit.
const IDLE_PURGE_DIVISOR: u64 = 50;
/// A correction over a twentieth (5 %) of the limit is not trusted to raise
/// the level between ticks on its own.
const STALE_CORRECTION_DIVISOR: u64 = 20;
/// The least time between two log lines for the same kind of transition.
const TRANSITION_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// The least time between two "pressure holds at critical" lines.
const STUCK_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Usage must fall by this share of itself to count as relief.
const RELIEF_FRACTION: f64 = 0.02;

/// Escalation while critical holds without relief.
#[derive(Debug, Default)]
struct Stuck {
    /// When the current stretch without relief began, and at what usage.
    since: Option<(Instant, u64)>,
    /// 0: reclaim hard; 1: allocator purged; 2: reclaimers asked for all.
    stage: u8,
    last_log: Option<Instant>,
}

/// Rate limit for transition log lines, per (from, to).
#[derive(Debug, Default)]
struct TransitionLog {
    last: [[Option<Instant>; 3]; 3],
    suppressed: [[u64; 3]; 3],
}

/// The monitor's state between ticks.
pub(crate) struct MonitorCore {
    shared: Arc<Shared>,
    machine: LevelMachine,
    sampler: Box<dyn Sampler>,
    count_cgroup: bool,
    /// `measured - tracked` at the last tick.
    correction_bytes: i64,
    last_components: [u64; MAX_COMPONENTS],
    stuck: Stuck,
    stuck_after: Duration,
    log: TransitionLog,
    ticks: u64,
}

impl MonitorCore {
    pub(crate) fn new(
        shared: Arc<Shared>,
        machine: LevelMachine,
        sampler: Box<dyn Sampler>,
        count_cgroup: bool,
        stuck_after: Duration,
    ) -> Self {
        MonitorCore {
            shared,
            machine,
            sampler,
            count_cgroup,
            correction_bytes: 0,
            last_components: [0; MAX_COMPONENTS],
            stuck: Stuck::default(),
            stuck_after,
            log: TransitionLog::default(),
            ticks: 0,
        }
    }

    /// A full tick: every reading, the level, the responses, the metrics.
    ///
    /// Returns `true` when the shim's total was already past a watermark as
    /// it was armed (see [`arm`](Self::arm)): no signal will report that
    /// crossing, so the caller should look again soon.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let started = Instant::now();

        // Read everything and decide the usage figure. A rise that the OS
        // figure decides while jemalloc holds many free pages is read again
        // once they are given back: freed memory is not pressure.
        let mut sample = self.sampler.sample();
        let mut usage = decide_usage(&sample, self.count_cgroup);
        if usage.decided_by != UsageSource::Tracked
            && self.machine.would_rise(usage.usage_bytes)
            && self.purge_if_idle(&sample)
        {
            sample = self.sampler.sample();
            usage = decide_usage(&sample, self.count_cgroup);
        }
        self.correction_bytes = usage
            .measured_bytes
            .map_or(0, |m| m as i64 - sample.tracked_bytes as i64);
        self.last_components = sample.components;

        // Decide the level, then act on it.
        self.evaluate(usage, sample.tracked_bytes, now);
        self.respond(usage.usage_bytes, &sample, now);
        let outside = self.arm();

        // Publish the reading for readers and metrics.
        self.ticks += 1;
        let reading = self.reading(&sample, usage, started.elapsed());
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.shared.metrics {
            metrics.record_tick(&crate::metrics::TickMetrics {
                limit_bytes: reading.limit_bytes,
                warning_bytes: reading.warning_bytes,
                critical_bytes: reading.critical_bytes,
                usage_bytes: reading.usage_bytes,
                tracked_bytes: reading.tracked_bytes,
                correction_bytes: reading.correction_bytes,
                level: reading.level,
                components: &reading.components,
                reserved: &reading.reserved,
                process: reading.process,
                jemalloc: reading.jemalloc,
                cgroup_usage_bytes: reading.cgroup.as_ref().and_then(|c| c.usage_bytes),
                cgroup_limit_bytes: reading.cgroup.as_ref().and_then(|c| c.limit_bytes),
                tick_seconds: reading.tick_duration.as_secs_f64(),
            });
        }
        if let Ok(mut slot) = self.shared.reading.lock() {
            *slot = reading;
        }
        outside
    }

    /// Between ticks, when a crossing woke the monitor: the shim's total
    /// with the last correction, no other reading. Returns what
    /// [`tick`](Self::tick) does.
    pub(crate) fn wake(&mut self, now: Instant) -> bool {
        let tracked = self.sampler.tracked_bytes();
        let usage_bytes = tracked.saturating_add(self.correction_bytes.max(0) as u64);

        // A rise past what the shim's total alone explains, made by a large
        // correction, is judged on fresh readings: the pages behind it may
        // have been freed since.
        let config = self.machine.config();
        let large_correction =
            self.correction_bytes.max(0) as u64 > config.limit_bytes() / STALE_CORRECTION_DIVISOR;
        let explained = config.entry_level(tracked).max(self.machine.level());
        if large_correction && config.entry_level(usage_bytes) > explained {
            return self.tick(now);
        }
        let usage = Usage {
            usage_bytes,
            decided_by: UsageSource::Tracked,
            measured_bytes: None,
        };
        if let Some(transition) = self.evaluate(usage, tracked, now) {
            if transition.is_escalation() {
                self.reclaim_for(transition.to, usage_bytes);
            }
        }
        self.arm()
    }

    /// Runs the state machine on `usage`; publishes and logs a transition.
    fn evaluate(&mut self, usage: Usage, tracked_bytes: u64, now: Instant) -> Option<Transition> {
        let overlap = self.reserved_and_allocated_bytes();
        self.shared
            .tracker
            .set_usage_bytes(usage.usage_bytes.saturating_sub(overlap));
        self.shared
            .usage_bytes
            .store(usage.usage_bytes, Ordering::Relaxed);
        let LevelChange { from, to, sequence } = self.machine.observe(usage.usage_bytes, now)?;
        let transition = Transition {
            from,
            to,
            usage_bytes: usage.usage_bytes,
            limit_bytes: self.machine.config().limit_bytes(),
            sequence,
            reason: Reason {
                decided_by: usage.decided_by,
                tracked_bytes,
                measured_bytes: usage.measured_bytes,
                top_components: self.top_components(),
            },
        };
        self.log_transition(&transition, now);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.shared.metrics {
            metrics.record_transition(from, to);
        }
        if to != PressureLevel::Critical {
            self.stuck = Stuck::default();
        }
        self.shared.publisher.publish(transition.clone());
        Some(transition)
    }

    /// Reclaims toward the warning exit point as the level asks, and
    /// escalates while critical holds without relief.
    fn respond(&mut self, usage_bytes: u64, sample: &Sample, now: Instant) {
        let level = self.machine.level();
        if level == PressureLevel::Normal {
            return;
        }

        // Dirty pages jemalloc keeps are resident but free: give them back.
        self.purge_if_idle(sample);
        self.reclaim_for(level, usage_bytes);
        if level == PressureLevel::Critical {
            self.escalate_if_stuck(usage_bytes, now);
        }
    }

    /// Purges jemalloc when it holds more than 2 % of the limit resident but
    /// unallocated; `true` if it purged.
    fn purge_if_idle(&mut self, sample: &Sample) -> bool {
        let Some(j) = sample.jemalloc else {
            return false;
        };
        let idle = j.resident_bytes.saturating_sub(j.allocated_bytes);
        idle > self.machine.config().limit_bytes() / IDLE_PURGE_DIVISOR && self.sampler.purge()
    }

    /// Asks reclaimers to bring usage down to the warning exit point.
    fn reclaim_for(&mut self, level: PressureLevel, usage_bytes: u64) -> u64 {
        let urgency = match level {
            PressureLevel::Normal => return 0,
            PressureLevel::Warning => Urgency::Gentle,
            PressureLevel::Critical => Urgency::Hard,
        };
        self.reclaim(usage_bytes, urgency)
    }

    fn reclaim(&mut self, usage_bytes: u64, urgency: Urgency) -> u64 {
        let target = usage_bytes.saturating_sub(self.machine.config().warning_exit_bytes());
        if target == 0 && urgency != Urgency::Desperate {
            return 0;
        }
        let outcome = self.shared.reclaimers.reclaim(target.max(1), urgency);
        if outcome.freed_bytes > 0 {
            self.shared
                .reclaimed_bytes
                .fetch_add(outcome.freed_bytes, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            if let Some(metrics) = &self.shared.metrics {
                metrics.record_reclaimed(outcome.freed_bytes);
            }
            tracing::debug!(
                freed_bytes = outcome.freed_bytes,
                target_bytes = target,
                urgency = urgency.as_str(),
                "reclaimed"
            );
        }
        outcome.freed_bytes
    }

    /// Purges, then asks for everything, then says why critical holds.
    fn escalate_if_stuck(&mut self, usage_bytes: u64, now: Instant) {
        let (since, at_usage) = *self.stuck.since.get_or_insert((now, usage_bytes));
        let relieved = (usage_bytes as f64) < at_usage as f64 * (1.0 - RELIEF_FRACTION);
        if relieved {
            self.stuck = Stuck {
                since: Some((now, usage_bytes)),
                ..Stuck::default()
            };
            return;
        }
        if now.duration_since(since) < self.stuck_after {
            return;
        }
        match self.stuck.stage {
            0 => {
                let purged = self.sampler.purge();
                tracing::warn!(
                    usage_bytes,
                    purged,
                    "critical holds: purged allocator arenas"
                );
                self.stuck.stage = 1;
                self.stuck.since = Some((now, usage_bytes));
            }
            1 => {
                let freed_bytes = self.reclaim(usage_bytes, Urgency::Desperate);
                tracing::warn!(
                    usage_bytes,
                    freed_bytes,
                    "critical holds: asked reclaimers for all"
                );
                self.stuck.stage = 2;
                self.stuck.since = Some((now, usage_bytes));
            }
            _ => {
                let freed_bytes = self.reclaim(usage_bytes, Urgency::Desperate);
                let due = self
                    .stuck
                    .last_log
                    .is_none_or(|last| now.duration_since(last) >= STUCK_LOG_INTERVAL);
                if due {
                    self.stuck.last_log = Some(now);
                    let top = self.top_components();
                    tracing::error!(
                        usage_bytes,
                        limit_bytes = self.machine.config().limit_bytes(),
                        freed_bytes,
                        reclaimers = self.shared.reclaimers.len(),
                        top_components = ?top,
                        "pressure holds at critical: reclaimers have nothing left to shed \
                         and the allocator is purged; the memory is live"
                    );
                }
            }
        }
    }

    /// Bytes both reserved and already allocated, per component: the pool
    /// counts each such byte once, as reserved, not again as usage.
    fn reserved_and_allocated_bytes(&self) -> u64 {
        let reserved = self.shared.tracker.reserved_by_component();
        reserved
            .iter()
            .zip(self.last_components)
            .map(|((_, reserved), live)| (*reserved).min(live))
            .sum()
    }

    /// Arms the shim's watermarks at the next thresholds up and down;
    /// `true` if the total is already outside them.
    ///
    /// A crossing that happens after a look but before this arming (threads
    /// freeing while a transition is published, say) raises no signal: the
    /// watermark it crossed was not armed yet, and the one armed now is
    /// already behind the total.
    fn arm(&self) -> bool {
        let config = self.machine.config();
        let correction = self.correction_bytes.max(0);
        let to_tracked = |usage_bytes: u64| (usage_bytes as i64).saturating_sub(correction);
        let (low, high) = match self.machine.level() {
            PressureLevel::Normal => (i64::MIN, to_tracked(config.warning_bytes())),
            PressureLevel::Warning => (
                to_tracked(config.warning_exit_bytes()),
                to_tracked(config.critical_bytes()),
            ),
            PressureLevel::Critical => (to_tracked(config.critical_exit_bytes()), i64::MAX),
        };
        mempressure_alloc::set_watermarks(low, high)
    }

    fn top_components(&self) -> Vec<(&'static str, u64)> {
        let names = self.shared.components;
        let mut top: Vec<(&'static str, u64)> = names
            .iter()
            .zip(self.last_components)
            .filter(|(_, bytes)| *bytes > 0)
            .map(|(name, bytes)| (*name, bytes))
            .collect();
        top.sort_by_key(|entry| std::cmp::Reverse(entry.1));
        top.truncate(TOP_COMPONENTS);
        top
    }

    fn log_transition(&mut self, t: &Transition, now: Instant) {
        let (f, to) = (t.from as usize, t.to as usize);
        if let Some(last) = self.log.last[f][to] {
            if now.duration_since(last) < TRANSITION_LOG_INTERVAL {
                self.log.suppressed[f][to] += 1;
                return;
            }
        }
        self.log.last[f][to] = Some(now);
        let suppressed = std::mem::take(&mut self.log.suppressed[f][to]);
        let (from, to_level) = (t.from.as_str(), t.to.as_str());
        let reason = &t.reason;
        match t.to {
            PressureLevel::Critical => tracing::error!(
                from, to = to_level, usage_bytes = t.usage_bytes, limit_bytes = t.limit_bytes,
                sequence = t.sequence, %reason, suppressed, "memory pressure critical"
            ),
            PressureLevel::Warning if t.is_escalation() => tracing::warn!(
                from, to = to_level, usage_bytes = t.usage_bytes, limit_bytes = t.limit_bytes,
                sequence = t.sequence, %reason, suppressed, "memory pressure warning"
            ),
            _ => tracing::info!(
                from, to = to_level, usage_bytes = t.usage_bytes, limit_bytes = t.limit_bytes,
                sequence = t.sequence, %reason, suppressed, "memory pressure eased"
            ),
        }
    }

    fn reading(&self, sample: &Sample, usage: Usage, tick: Duration) -> MonitorReading {
        let config = self.machine.config();
        let names = self.shared.components;
        MonitorReading {
            level: self.machine.level(),
            usage_bytes: usage.usage_bytes,
            decided_by: usage.decided_by,
            tracked_bytes: sample.tracked_bytes,
            measured_bytes: usage.measured_bytes,
            correction_bytes: self.correction_bytes,
            limit_bytes: config.limit_bytes(),
            warning_bytes: config.warning_bytes(),
            critical_bytes: config.critical_bytes(),
            components: names.iter().copied().zip(sample.components).collect(),
            reserved: self.shared.tracker.reserved_by_component(),
            process: sample.process,
            jemalloc: sample.jemalloc,
            cgroup: sample.cgroup.clone(),
            tick_duration: tick,
            ticks: self.ticks,
        }
    }
}
