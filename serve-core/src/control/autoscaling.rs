//! Autoscaling: how many replicas a deployment should run for its load.
//!
//! The policy ([`AutoscalingPolicy`]) is a pure, deterministic function of the configuration, the
//! recorded load and the time passed in, so it is unit-tested over scripted load without a runtime;
//! the deployment's controller feeds it measurements ([`AutoscalingPolicy::record`]) and applies its
//! decisions ([`AutoscalingPolicy::decide`]). It never reads the clock itself.
//!
//! # How the replica count is decided
//!
//! - **Load** is the average of the `ongoing` samples (requests queued at callers plus running on
//!   replicas) recorded in the last `look_back_period_s`; with no samples in that window it is 0.
//!   The controller records one sample per decision (every 0.1 s), so the window holds up to a few
//!   hundred of them; samples closer together than `look_back_period_s / 256` are kept as one
//!   (their sum and count), which bounds the memory to some 256 entries whatever the window, and
//!   the average is still that of every sample (only the window's edge moves by at most that
//!   much). The sum of the window is kept as samples come and go, so a decision costs the same
//!   however many samples there are.
//! - **Desired replicas**, given the current *target* count `current` (not the running count, so
//!   replicas whose constructors are still running do not make the policy ask for more), follow Ray
//!   Serve's formula: `ratio = (load / current) / target_ongoing_requests` and
//!   `desired = ceil(current * (1 + (ratio - 1) * factor))`, where `factor` is `upscaling_factor`
//!   when `ratio > 1` and `downscaling_factor` when `ratio < 1` (both default to 1, which gives
//!   `ceil(load / target_ongoing_requests)`). Rounding up tolerates a tiny floating-point excess
//!   (`4.0000001` counts as 4). As in Ray, when there is no load at all but a factor below 1 would
//!   keep the count where it is, the count still drops by one, so the deployment can reach its
//!   minimum. From `current = 0`, `desired = ceil(load / target_ongoing_requests)` and at least 1
//!   as soon as there is any load.
//! - The result is **clamped** to `[min_replicas, max_replicas]`.
//! - **Delays**: a change is applied only once it has held: while desired stays above the current
//!   target for `upscale_delay_s`, or below it for `downscale_delay_s`, as seen by successive calls
//!   to [`decide`](AutoscalingPolicy::decide), which then returns the latest desired count. The clock
//!   of a direction restarts when desired comes back to the current target, flips direction, or the
//!   current target changes; after a change is applied the pending state resets.
//! - **Scale to zero and back**: with `min_replicas = 0` and no load, desired is 0. As in Ray, a
//!   deployment above 1 replica first goes down to 1 (after `downscale_delay_s`), and the last
//!   step, 1 to 0, waits `downscale_to_zero_delay_s` (when set; else `downscale_delay_s` again).
//!   From 0 replicas any load (a request queued at a caller) is applied at once, with no upscale
//!   delay: a request must not wait 30 s for a deployment to wake. Likewise a current target below
//!   `min_replicas` (after a config change) goes at once to the desired count, and one above
//!   `max_replicas` at once to `max_replicas`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use crate::config::AutoscalingConfig;
use crate::util::time;

/// Tolerance when rounding a replica count up, so that floating-point noise (`4.0000001`) does not
/// add a replica.
const ROUNDING_EPSILON: f64 = 1e-6;

/// Rounds a non-negative replica count up, tolerating [`ROUNDING_EPSILON`]; NaN and negatives give
/// 0, and huge values saturate.
fn ceil_replicas(x: f64) -> usize {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    // `as` saturates for values beyond usize::MAX (and for infinity).
    (x - ROUNDING_EPSILON).ceil().max(0.0) as usize
}

/// A number of seconds from the (validated) config as a [`Duration`]; what is not a duration is
/// zero.
fn secs(s: f64) -> Duration {
    time::seconds(s).unwrap_or(Duration::ZERO)
}

/// Which way a pending change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// Samples within this fraction of the look-back window of one another are kept as one entry.
const SAMPLE_BUCKETS: u32 = 256;

/// Samples recorded close together: from `since`, `count` samples adding up to `sum`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    since: Instant,
    sum: u64,
    count: u64,
}

/// A change that desired replicas have asked for, not yet applied.
#[derive(Debug, Clone, Copy)]
struct Pending {
    direction: Direction,
    /// When desired first moved this way (continuously since).
    since: Instant,
    /// The current target the change is relative to.
    from: usize,
}

/// The autoscaling decision-maker of one deployment: fed load samples, it says how many replicas to run.
///
/// It holds the configuration, the samples within the look-back window and the pending decision;
/// see the [module docs](self) for how it decides. All time comes from the `now` arguments.
#[derive(Debug, Clone)]
pub struct AutoscalingPolicy {
    config: AutoscalingConfig,
    /// The samples of the look-back window, oldest first, close ones merged.
    samples: VecDeque<Bucket>,
    /// The sum and count of every sample in `samples`.
    total: (u64, u64),
    pending: Option<Pending>,
}

impl AutoscalingPolicy {
    /// A policy for `config`, with no samples and nothing pending.
    pub fn new(config: AutoscalingConfig) -> Self {
        Self {
            config,
            samples: VecDeque::new(),
            total: (0, 0),
            pending: None,
        }
    }

    /// The configuration this policy decides with.
    pub fn config(&self) -> &AutoscalingConfig {
        &self.config
    }

    /// Records one measurement: `ongoing` = requests queued at callers + running on replicas, at `now`.
    ///
    /// Samples older than the look-back window (relative to `now`) are dropped.
    pub fn record(&mut self, now: Instant, ongoing: usize) {
        let window = secs(self.config.look_back_period_s);
        while let Some(oldest) = self.samples.front() {
            if now.saturating_duration_since(oldest.since) > window {
                self.total.0 -= oldest.sum;
                self.total.1 -= oldest.count;
                self.samples.pop_front();
            } else {
                break;
            }
        }
        let ongoing = u64::try_from(ongoing).unwrap_or(u64::MAX);
        self.total.0 = self.total.0.saturating_add(ongoing);
        self.total.1 += 1;
        let resolution = window / SAMPLE_BUCKETS;
        match self.samples.back_mut() {
            Some(last) if now.saturating_duration_since(last.since) < resolution => {
                last.sum = last.sum.saturating_add(ongoing);
                last.count += 1;
            }
            _ => self.samples.push_back(Bucket {
                since: now,
                sum: ongoing,
                count: 1,
            }),
        }
    }

    /// The average of the samples within the look-back window ending at `now`; 0 with none.
    pub(crate) fn load(&self, now: Instant) -> f64 {
        let window = secs(self.config.look_back_period_s);
        // Usually none (`record` drops them), unless `now` is later than the last sample.
        let (mut sum, mut count) = self.total;
        for old in &self.samples {
            if now.saturating_duration_since(old.since) <= window {
                break;
            }
            sum -= old.sum;
            count -= old.count;
        }
        if count == 0 {
            0.0
        } else {
            sum as f64 / count as f64
        }
    }

    /// `[min_replicas, max_replicas]`, with a max below the min read as the min.
    fn bounds(&self) -> (usize, usize) {
        let min = self.config.min_replicas;
        (min, self.config.max_replicas.max(min))
    }

    /// The target replica count to run from `now` on, given the current *target* (not the running count,
    /// so slow constructors do not cause thrash). Returns `current_target` when nothing changes.
    ///
    /// A change is returned only once desired has stayed on the same side of `current_target` for
    /// `upscale_delay_s` (up) or `downscale_delay_s` (down; for the step from 1 to 0,
    /// `downscale_to_zero_delay_s` when set), except that from 0 replicas or from a target below
    /// `min_replicas` the desired count is returned at once, and from a target above
    /// `max_replicas`, `max_replicas` is. A downscale to 0 from more than 1 replica returns 1:
    /// the last step waits its own delay.
    pub fn decide(&mut self, now: Instant, current_target: usize) -> usize {
        let desired = self.desired(now, current_target);
        let (min, max) = self.bounds();
        if desired == current_target {
            self.pending = None;
            return current_target;
        }
        if current_target == 0 || current_target < min {
            // Under-provisioned (woken from zero, or a raised minimum): what the load needs, at once.
            self.pending = None;
            return desired;
        }
        if current_target > max {
            // A lowered maximum: down to it at once; any further downscale waits as usual.
            self.pending = None;
            return max;
        }
        let direction = if desired > current_target {
            Direction::Up
        } else {
            Direction::Down
        };
        let pending = match self.pending {
            Some(p) if p.direction == direction && p.from == current_target => p,
            _ => Pending {
                direction,
                since: now,
                from: current_target,
            },
        };
        let (delay, to) = match direction {
            Direction::Up => (self.config.upscale_delay_s, desired),
            // As in Ray: to 0 by way of 1, the last step with its own delay.
            Direction::Down if desired == 0 && current_target > 1 => {
                (self.config.downscale_delay_s, 1)
            }
            Direction::Down if desired == 0 => (
                self.config
                    .downscale_to_zero_delay_s
                    .unwrap_or(self.config.downscale_delay_s),
                0,
            ),
            Direction::Down => (self.config.downscale_delay_s, desired),
        };
        if now.saturating_duration_since(pending.since) >= secs(delay) {
            self.pending = None;
            to
        } else {
            self.pending = Some(pending);
            current_target
        }
    }

    /// What the load asks for right now, before delays (for status/metrics): clamped desired count.
    pub fn desired(&self, now: Instant, current_target: usize) -> usize {
        let load = self.load(now);
        let target = self.config.target_ongoing_requests.max(f64::MIN_POSITIVE);
        let unclamped = if current_target == 0 {
            let n = ceil_replicas(load / target);
            if load > 0.0 { n.max(1) } else { n }
        } else {
            let current = current_target as f64;
            let ratio = (load / current) / target;
            let factor = if ratio > 1.0 {
                self.config.upscaling_factor.unwrap_or(1.0)
            } else if ratio < 1.0 {
                self.config.downscaling_factor.unwrap_or(1.0)
            } else {
                1.0
            };
            let mut n = ceil_replicas(current * (1.0 + (ratio - 1.0) * factor));
            // As in Ray: with no load, a factor below 1 must not keep the count stuck above 0.
            if load == 0.0 && n >= current_target {
                n = current_target - 1;
            }
            n
        };
        let (min, max) = self.bounds();
        unclamped.clamp(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock: `at(x)` is `x` seconds after a fixed start.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Self {
            Clock(Instant::now())
        }
        fn at(&self, x: f64) -> Instant {
            self.0 + Duration::from_secs_f64(x)
        }
    }

    /// Test config: 1..=10 replicas, target 2, up 30 s, down 600 s, look-back 30 s.
    fn config() -> AutoscalingConfig {
        AutoscalingConfig::default().max_replicas(10)
    }

    /// Drives `policy` from `from` to `to` (seconds) in steps of `step`, recording `load(t)` and
    /// then deciding at each step, starting at target `target`. Returns `(t, target)` for every
    /// change.
    fn run(
        clock: &Clock,
        policy: &mut AutoscalingPolicy,
        target: &mut usize,
        from: f64,
        to: f64,
        step: f64,
        load: impl Fn(f64) -> usize,
    ) -> Vec<(f64, usize)> {
        let mut changes = Vec::new();
        let steps = ((to - from) / step).round() as usize;
        for i in 0..=steps {
            let t = from + i as f64 * step;
            policy.record(clock.at(t), load(t));
            let next = policy.decide(clock.at(t), *target);
            if next != *target {
                changes.push((t, next));
                *target = next;
            }
        }
        changes
    }

    #[test]
    fn steady_load_at_target_does_not_change() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config());
        let mut target = 3;
        // 3 replicas * 2 target = 6 ongoing.
        let changes = run(&clock, &mut p, &mut target, 0.0, 2000.0, 1.0, |_| 6);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(p.desired(clock.at(2000.0), 3), 3);
    }

    #[test]
    fn burst_shorter_than_upscale_delay_does_not_change() {
        let clock = Clock::new();
        // A short look-back so the burst leaves the average quickly.
        let mut p = AutoscalingPolicy::new(config().look_back_period_s(1.0));
        let mut target = 2;
        let load = |t: f64| if (100.0..120.0).contains(&t) { 20 } else { 4 };
        let changes = run(&clock, &mut p, &mut target, 0.0, 1000.0, 1.0, load);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(target, 2);
    }

    #[test]
    fn sustained_high_load_scales_up_exactly_at_the_delay() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().look_back_period_s(1.0));
        let mut target = 1;
        // From t = 100: 9 ongoing -> ceil(9 / 2) = 5 replicas.
        let load = |t: f64| if t >= 100.0 { 9 } else { 2 };
        let changes = run(&clock, &mut p, &mut target, 0.0, 300.0, 1.0, load);
        assert_eq!(changes, vec![(130.0, 5)]);

        // Not one step before the delay.
        let mut p = AutoscalingPolicy::new(config().look_back_period_s(1.0));
        let mut target = 1;
        let changes = run(&clock, &mut p, &mut target, 0.0, 129.0, 1.0, load);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn scale_up_is_clamped_at_max() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().max_replicas(4).look_back_period_s(1.0));
        let mut target = 1;
        let changes = run(&clock, &mut p, &mut target, 0.0, 100.0, 1.0, |_| 100);
        assert_eq!(changes, vec![(30.0, 4)]);
        assert_eq!(p.desired(clock.at(100.0), 4), 4);
    }

    #[test]
    fn load_dropping_scales_down_only_after_the_downscale_delay() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().look_back_period_s(1.0));
        let mut target = 8;
        // 16 ongoing holds 8 replicas; from t = 100 only 3 -> ceil(3 / 2) = 2.
        let load = |t: f64| if t >= 100.0 { 3 } else { 16 };
        let changes = run(&clock, &mut p, &mut target, 0.0, 699.0, 1.0, load);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(p.desired(clock.at(699.0), 8), 2);
        let changes = run(&clock, &mut p, &mut target, 700.0, 2000.0, 1.0, load);
        assert_eq!(changes, vec![(700.0, 2)]);
    }

    #[test]
    fn flapping_load_never_scales() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().look_back_period_s(1.0));
        let mut target = 3;
        // Above target for 20 s, at target for 1 s, below for 500 s, at target for 1 s, again...
        let load = |t: f64| match (t as usize) % 522 {
            0..20 => 20,
            20 => 6,
            21..521 => 1,
            _ => 6,
        };
        let changes = run(&clock, &mut p, &mut target, 0.0, 10_000.0, 1.0, load);
        assert!(changes.is_empty(), "{changes:?}");

        // Flipping directly between up and down restarts the clock too.
        let mut p = AutoscalingPolicy::new(config().look_back_period_s(1.0));
        let mut target = 3;
        let load = |t: f64| {
            if (t as usize / 20).is_multiple_of(2) {
                20
            } else {
                1
            }
        };
        let changes = run(&clock, &mut p, &mut target, 0.0, 10_000.0, 1.0, load);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn upscaling_factor_moves_half_way() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(
            config()
                .upscaling_factor(0.5)
                .upscale_delay_s(0.0)
                .look_back_period_s(1.0),
        );
        // 2 replicas, 16 ongoing: ceil(16 / 2) = 8 without the factor; half way is 5.
        p.record(clock.at(0.0), 16);
        assert_eq!(p.desired(clock.at(0.0), 2), 5);
        assert_eq!(p.decide(clock.at(0.0), 2), 5);
    }

    #[test]
    fn downscaling_factor_moves_half_way_and_reaches_the_minimum() {
        let clock = Clock::new();
        let cfg = config()
            .min_replicas(0)
            .downscaling_factor(0.5)
            .downscale_delay_s(0.0)
            .look_back_period_s(1.0);
        let mut p = AutoscalingPolicy::new(cfg);
        // 8 replicas, 4 ongoing: ceil(4 / 2) = 2 without the factor; half way is 5.
        p.record(clock.at(0.0), 4);
        assert_eq!(p.decide(clock.at(0.0), 8), 5);
        // With no load, ceil(1 * 0.5) = 1 would stick; it drops to 0.
        p.record(clock.at(10.0), 0);
        assert_eq!(p.desired(clock.at(10.0), 1), 0);
    }

    #[test]
    fn desired_is_clamped_to_min_and_max() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().min_replicas(2).max_replicas(5));
        assert_eq!(p.desired(clock.at(0.0), 3), 2, "no samples: load 0 -> min");
        p.record(clock.at(0.0), 1);
        assert_eq!(p.desired(clock.at(0.0), 3), 2);
        p.record(clock.at(0.0), 1000);
        assert_eq!(p.desired(clock.at(0.0), 3), 5);
        // A max below the min reads as the min.
        let mut p = AutoscalingPolicy::new(config().min_replicas(3).max_replicas(1));
        p.record(clock.at(0.0), 1000);
        assert_eq!(p.desired(clock.at(0.0), 3), 3);
    }

    #[test]
    fn target_outside_bounds_is_corrected_at_once() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().min_replicas(2).max_replicas(5));
        p.record(clock.at(0.0), 8);
        // Below the minimum: straight to what the load needs (ceil(8 / 2) = 4).
        assert_eq!(p.decide(clock.at(0.0), 1), 4);
        // Above the maximum: down to it at once...
        p.record(clock.at(1.0), 0);
        p.record(clock.at(1.0), 0);
        p.record(clock.at(1.0), 0);
        assert_eq!(p.desired(clock.at(1.0), 9), 2);
        assert_eq!(p.decide(clock.at(1.0), 9), 5);
        // ...and further down only after the downscale delay.
        assert_eq!(p.decide(clock.at(2.0), 5), 5);
        assert_eq!(p.decide(clock.at(601.0), 5), 5);
        assert_eq!(p.decide(clock.at(602.0), 5), 2);
    }

    #[test]
    fn rounding_tolerates_floating_point_noise() {
        assert_eq!(ceil_replicas(4.0000001), 4);
        assert_eq!(ceil_replicas(4.0), 4);
        assert_eq!(ceil_replicas(4.01), 5);
        assert_eq!(ceil_replicas(0.0), 0);
        assert_eq!(ceil_replicas(-3.0), 0);
        assert_eq!(ceil_replicas(f64::NAN), 0);
        // 3 ongoing at a target of 0.3 is 10 replicas, though 3.0 / 0.3 = 10.000000000000002.
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().max_replicas(20).target_ongoing_requests(0.3));
        p.record(clock.at(0.0), 3);
        assert_eq!(p.desired(clock.at(0.0), 1), 10);
    }

    #[test]
    fn scales_to_zero_after_the_downscale_delay_and_back_to_one_at_once() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().min_replicas(0).look_back_period_s(10.0));
        let mut target = 1;
        // Idle from the start: 0 is desired, applied only after 600 s.
        let changes = run(&clock, &mut p, &mut target, 0.0, 599.0, 1.0, |_| 0);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(p.desired(clock.at(599.0), 1), 0);
        let changes = run(&clock, &mut p, &mut target, 600.0, 1000.0, 1.0, |_| 0);
        assert_eq!(changes, vec![(600.0, 0)]);
        // Staying idle at 0 changes nothing.
        let changes = run(&clock, &mut p, &mut target, 1001.0, 2000.0, 1.0, |_| 0);
        assert!(changes.is_empty(), "{changes:?}");
        // One queued request, averaged with nine idle samples, wakes it at once.
        p.record(clock.at(2001.0), 1);
        assert_eq!(p.desired(clock.at(2001.0), 0), 1);
        assert_eq!(p.decide(clock.at(2001.0), 0), 1);
        // A heavy burst at 0 replicas goes straight to what it needs.
        let mut p = AutoscalingPolicy::new(config().min_replicas(0));
        p.record(clock.at(0.0), 7);
        assert_eq!(p.decide(clock.at(0.0), 0), 4);
    }

    #[test]
    fn to_zero_goes_by_way_of_one_and_waits_the_to_zero_delay_last() {
        let clock = Clock::new();
        // Idle from the start, 3 replicas: 3 -> 1 after `downscale_delay_s` (600), then 1 -> 0
        // after `downscale_to_zero_delay_s` (60) more, counted from the first decision at 1.
        let cfg = config().min_replicas(0).look_back_period_s(1.0);
        let mut p = AutoscalingPolicy::new(cfg.clone().downscale_to_zero_delay_s(60.0));
        let mut target = 3;
        let changes = run(&clock, &mut p, &mut target, 0.0, 2000.0, 1.0, |_| 0);
        assert_eq!(changes, vec![(600.0, 1), (661.0, 0)]);
        // Without it, the last step waits `downscale_delay_s` again.
        let mut p = AutoscalingPolicy::new(cfg.clone());
        let mut target = 3;
        let changes = run(&clock, &mut p, &mut target, 0.0, 2000.0, 1.0, |_| 0);
        assert_eq!(changes, vec![(600.0, 1), (1201.0, 0)]);
        // A to-zero delay shorter than the downscale delay only shortens the last step: from 1,
        // 0 comes after 5 s; from 2, 1 still waits 600 s.
        let mut p = AutoscalingPolicy::new(cfg.clone().downscale_to_zero_delay_s(5.0));
        let mut target = 1;
        let changes = run(&clock, &mut p, &mut target, 0.0, 100.0, 1.0, |_| 0);
        assert_eq!(changes, vec![(5.0, 0)]);
        let mut p = AutoscalingPolicy::new(cfg.clone().downscale_to_zero_delay_s(5.0));
        let mut target = 2;
        let changes = run(&clock, &mut p, &mut target, 0.0, 1000.0, 1.0, |_| 0);
        assert_eq!(changes, vec![(600.0, 1), (606.0, 0)]);
        // Load coming back during the last step's wait restarts its clock.
        let mut p = AutoscalingPolicy::new(cfg.downscale_to_zero_delay_s(60.0));
        let mut target = 1;
        let load = |t: f64| usize::from((30.0..31.0).contains(&t));
        let changes = run(&clock, &mut p, &mut target, 0.0, 200.0, 1.0, load);
        // The 1 s window sees the load until t = 31; idle from the decision at 32, 0 at 92.
        assert_eq!(changes, vec![(92.0, 0)]);
    }

    #[test]
    fn decisions_every_tenth_of_a_second_apply_the_delays_as_written() {
        let clock = Clock::new();
        // The default look-back (30 s) and a sample at each decision, every 0.1 s: load 9 from
        // t = 100 (5 replicas wanted) is applied 30 s later, at the first decision that sees the
        // wish held for `upscale_delay_s`, whatever the averaging.
        let mut p = AutoscalingPolicy::new(config().upscale_delay_s(30.0).downscale_delay_s(2.0));
        let mut target = 1;
        let changes = run(&clock, &mut p, &mut target, 0.0, 99.9, 0.1, |_| 2);
        assert!(changes.is_empty(), "{changes:?}");
        let changes = run(&clock, &mut p, &mut target, 100.0, 140.0, 0.1, |_| 9);
        // The average over 30 s crosses 2 per replica at once (one sample of 9 is enough).
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!((changes[0].0 - 130.0).abs() < 1e-6, "{changes:?}");
        assert_eq!(
            changes[0].1, 5,
            "the average by then is all 9s: {changes:?}"
        );
        // Idle from t = 200 at 5 replicas: the average falls as the 9s leave the window; one
        // step down per `downscale_delay_s` (2 s) of the same wish.
        let changes = run(&clock, &mut p, &mut target, 140.1, 260.0, 0.1, |_| 0);
        assert!(!changes.is_empty());
        assert_eq!(changes.last().unwrap().1, 1, "{changes:?}");
        // The samples of 30 s at 0.1 s each are held in at most 256 + 1 entries.
        assert!(p.samples.len() <= 257, "{}", p.samples.len());
    }

    #[test]
    fn merged_samples_average_as_the_samples_do() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().max_replicas(1000));
        // 3000 samples 1 ms apart, alternating 1 and 3: an average of 2.
        for i in 0..3000 {
            p.record(clock.at(i as f64 * 0.001), if i % 2 == 0 { 1 } else { 3 });
        }
        assert!(p.samples.len() < 30, "{} entries", p.samples.len());
        // Average 2 for a target of 2 per replica: 1 replica; with a target of 0.5: 4.
        assert_eq!(p.desired(clock.at(3.0), 1), 1);
        let mut p2 =
            AutoscalingPolicy::new(config().max_replicas(1000).target_ongoing_requests(0.5));
        for i in 0..3000 {
            p2.record(clock.at(i as f64 * 0.001), if i % 2 == 0 { 1 } else { 3 });
        }
        assert_eq!(p2.desired(clock.at(3.0), 1), 4);
        // Once every sample has left the window, the load is 0 (and the sums are emptied).
        assert_eq!(p2.desired(clock.at(100.0), 3), 1);
        p2.record(clock.at(100.0), 0);
        assert_eq!(p2.total, (0, 1));
    }

    #[test]
    fn look_back_averages_and_ignores_old_samples() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().max_replicas(100));
        // Average of 2, 4, 6, 8 = 5 -> ceil(5 / 2) = 3.
        for (i, v) in [2, 4, 6, 8].into_iter().enumerate() {
            p.record(clock.at(i as f64), v);
        }
        assert_eq!(p.desired(clock.at(3.0), 1), 3);

        // A single spike of 1000 at t = 0, then 4 each second: once the spike is older than the
        // 30 s window it no longer counts.
        let mut p = AutoscalingPolicy::new(config().max_replicas(100));
        p.record(clock.at(0.0), 1000);
        for t in 1..=40 {
            p.record(clock.at(t as f64), 4);
        }
        assert_eq!(p.desired(clock.at(40.0), 1), 2);
        assert!(p.samples.len() <= 31, "old samples are dropped");
        // Inside the window the spike does count: (1000 + 4 * 30) / 31 -> 19 replicas.
        let mut p = AutoscalingPolicy::new(config().max_replicas(100));
        p.record(clock.at(0.0), 1000);
        for t in 1..=30 {
            p.record(clock.at(t as f64), 4);
        }
        assert_eq!(p.desired(clock.at(30.0), 1), 19);
        // And no samples in the window at all is a load of 0.
        assert_eq!(p.desired(clock.at(100.0), 5), 1);
    }

    #[test]
    fn a_change_of_current_target_restarts_the_clock() {
        let clock = Clock::new();
        let mut p = AutoscalingPolicy::new(config().look_back_period_s(1.0));
        p.record(clock.at(0.0), 20);
        assert_eq!(p.decide(clock.at(0.0), 1), 1);
        // The target was changed from outside (e.g. redeploy) to 2: the up clock starts again.
        p.record(clock.at(20.0), 20);
        assert_eq!(p.decide(clock.at(20.0), 2), 2);
        p.record(clock.at(40.0), 20);
        assert_eq!(p.decide(clock.at(40.0), 2), 2);
        p.record(clock.at(50.0), 20);
        assert_eq!(p.decide(clock.at(50.0), 2), 10);
        assert_eq!(p.config().max_replicas, 10);
    }
}
