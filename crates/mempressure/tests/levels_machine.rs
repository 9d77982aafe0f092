//! The level state machine driven through sample sequences on a made-up
//! clock: no sleeping, no real memory.

use std::time::{Duration, Instant};

use mempressure::level::PressureLevel::{self, Critical, Normal, Warning};
use mempressure::machine::{LevelChange, LevelConfig, LevelMachine};

/// Limit 1000 bytes: warning at 800 (exit below 750), critical at 900 (exit
/// below 850), dwell 1 s.
fn machine() -> LevelMachine {
    LevelMachine::new(LevelConfig::with_limit(1000).unwrap())
}

/// Feeds `samples`, one per `step`, from `start`; returns every change.
fn feed(
    machine: &mut LevelMachine,
    start: Instant,
    step: Duration,
    samples: impl IntoIterator<Item = u64>,
) -> Vec<LevelChange> {
    let mut at = start;
    let mut changes = Vec::new();
    for usage_bytes in samples {
        changes.extend(machine.observe(usage_bytes, at));
        at += step;
    }
    changes
}

fn levels(changes: &[LevelChange]) -> Vec<(PressureLevel, PressureLevel)> {
    changes.iter().map(|c| (c.from, c.to)).collect()
}

#[test]
fn hovering_around_the_warning_threshold_gives_one_transition() {
    // 1000 samples alternating 799 / 801 around warning (800), 100 ms apart:
    // far longer than the dwell, yet never below the exit point (750).
    let mut machine = machine();
    let samples = (0..1000).map(|i| if i % 2 == 0 { 799 } else { 801 });

    let changes = feed(
        &mut machine,
        Instant::now(),
        Duration::from_millis(100),
        samples,
    );

    assert_eq!(levels(&changes), vec![(Normal, Warning)]);
}

#[test]
fn hovering_around_the_critical_threshold_gives_one_transition() {
    let mut machine = machine();
    let samples = (0..1000).map(|i| if i % 2 == 0 { 899 } else { 901 });

    let changes = feed(
        &mut machine,
        Instant::now(),
        Duration::from_millis(100),
        samples,
    );

    assert_eq!(
        levels(&changes),
        vec![(Normal, Warning), (Warning, Critical)]
    );
}

#[test]
fn the_exact_threshold_value_enters_the_level() {
    let mut machine = machine();
    let t0 = Instant::now();
    assert_eq!(machine.observe(799, t0), None);
    assert_eq!(machine.observe(800, t0).map(|c| c.to), Some(Warning));
    assert_eq!(machine.observe(900, t0).map(|c| c.to), Some(Critical));
}

#[test]
fn normal_jumps_straight_to_critical() {
    let mut machine = machine();
    let change = machine.observe(950, Instant::now()).unwrap();
    assert_eq!(
        (change.from, change.to, change.sequence),
        (Normal, Critical, 1)
    );
}

#[test]
fn step_down_waits_for_the_dwell() {
    let mut machine = machine();
    let t0 = Instant::now();
    machine.observe(850, t0);

    // Well below the exit point, but only 999 ms after the transition.
    assert_eq!(machine.observe(100, t0 + Duration::from_millis(999)), None);
    assert_eq!(machine.level(), Warning);

    // At exactly the dwell it steps down.
    let change = machine.observe(100, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!((change.from, change.to), (Warning, Normal));
}

#[test]
fn step_down_needs_usage_below_the_exit_point_not_just_the_threshold() {
    let mut machine = machine();
    let t0 = Instant::now();
    machine.observe(800, t0);
    let later = t0 + Duration::from_secs(10);

    // Below warning (800) but not below its exit point (750): stays.
    assert_eq!(machine.observe(750, later), None);
    assert_eq!(machine.observe(799, later), None);
    assert_eq!(machine.observe(749, later).map(|c| c.to), Some(Normal));
}

#[test]
fn critical_steps_to_warning_then_to_normal() {
    let mut machine = machine();
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    machine.observe(950, t0);

    // 849 is below the critical exit (850) but above the warning exit.
    let down = machine.observe(849, t0 + s).unwrap();
    assert_eq!((down.from, down.to), (Critical, Warning));
    // The dwell restarts at that transition.
    assert_eq!(
        machine.observe(700, t0 + s + Duration::from_millis(500)),
        None
    );
    let recovered = machine.observe(700, t0 + s * 2).unwrap();
    assert_eq!((recovered.from, recovered.to), (Warning, Normal));
}

#[test]
fn critical_goes_straight_to_normal_when_usage_is_already_low() {
    let mut machine = machine();
    let t0 = Instant::now();
    machine.observe(950, t0);

    let change = machine.observe(749, t0 + Duration::from_secs(1)).unwrap();

    assert_eq!((change.from, change.to), (Critical, Normal));
}

#[test]
fn sequence_numbers_increase_by_one_per_transition() {
    let mut machine = machine();
    let samples = [850, 950, 849, 700, 950, 100, 820, 910];

    let changes = feed(
        &mut machine,
        Instant::now(),
        Duration::from_secs(2),
        samples,
    );

    let sequences: Vec<u64> = changes.iter().map(|c| c.sequence).collect();
    assert_eq!(sequences, (1..=changes.len() as u64).collect::<Vec<_>>());
    assert_eq!(machine.sequence(), changes.len() as u64);
    // Each change starts where the previous one ended.
    for pair in changes.windows(2) {
        assert_eq!(pair[0].to, pair[1].from);
    }
}

#[test]
fn a_clock_going_backwards_does_not_count_as_dwell() {
    let mut machine = machine();
    let t0 = Instant::now() + Duration::from_secs(60);
    machine.observe(850, t0);
    assert_eq!(machine.observe(0, t0 - Duration::from_secs(30)), None);
}

#[test]
fn set_config_keeps_the_level_and_judges_the_next_sample_by_new_limits() {
    let mut machine = machine();
    let t0 = Instant::now();
    machine.observe(850, t0);

    // Doubling the limit: 850 bytes is now far below the warning exit
    // (1600 - 100), but the level holds until a sample arrives.
    machine.set_config(LevelConfig::with_limit(2000).unwrap());
    assert_eq!(machine.level(), Warning);
    let change = machine.observe(850, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!((change.from, change.to), (Warning, Normal));

    // Halving it: the same usage is critical at once.
    machine.set_config(LevelConfig::with_limit(900).unwrap());
    let change = machine.observe(850, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(change.to, Critical);
}

#[test]
fn zero_dwell_and_zero_hysteresis_step_down_on_the_next_sample() {
    let config = LevelConfig::with_limit(1000)
        .unwrap()
        .with_hysteresis(0.0)
        .unwrap()
        .with_min_dwell(Duration::ZERO);
    let mut machine = LevelMachine::new(config);
    let t0 = Instant::now();
    machine.observe(800, t0);
    assert_eq!(machine.observe(799, t0).map(|c| c.to), Some(Normal));
}
