//! The pressure-level state machine: thresholds, hysteresis and dwell.
//!
//! [`LevelMachine`] turns a stream of usage samples into level changes. It
//! reads no clock and no memory itself: the caller passes the usage figure
//! and the time of the sample, so tests drive it with made-up numbers.

use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

use crate::level::PressureLevel;

/// Default warning threshold, as a fraction of the limit.
pub const DEFAULT_WARNING_FRACTION: f64 = 0.8;
/// Default critical threshold, as a fraction of the limit.
pub const DEFAULT_CRITICAL_FRACTION: f64 = 0.9;
/// Default hysteresis, as a fraction of the limit: usage must fall this far
/// below a threshold to leave its level. 5% is wider than the shim's flush
/// error on any realistic thread count, yet narrow enough that recovery does
/// not wait for a near-empty process.
pub const DEFAULT_HYSTERESIS_FRACTION: f64 = 0.05;
/// Default minimum time between a transition and a step down: one second,
/// a few monitor ticks, so a single low sample does not end an episode.
pub const DEFAULT_MIN_DWELL: Duration = Duration::from_secs(1);

/// Thresholds, hysteresis and dwell for a [`LevelMachine`].
///
/// Built by [`LevelConfig::new`], which checks every value, so a config in
/// hand is always usable. Byte thresholds are the fractions times the limit,
/// rounded to the nearest byte.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelConfig {
    limit_bytes: u64,
    warning_fraction: f64,
    critical_fraction: f64,
    hysteresis_fraction: f64,
    min_dwell: Duration,
}

/// Why a [`LevelConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigError {
    /// The limit is zero bytes.
    ZeroLimit,
    /// A fraction is outside its allowed range (or not a number).
    FractionOutOfRange {
        /// Which fraction: `warning`, `critical` or `hysteresis`.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// The warning threshold is not below the critical one (in bytes, after
    /// rounding).
    WarningNotBelowCritical {
        /// The warning fraction given.
        warning: f64,
        /// The critical fraction given.
        critical: f64,
    },
    /// The hysteresis is not smaller than the warning threshold, so usage
    /// could never fall far enough to return to normal.
    HysteresisTooLarge {
        /// The hysteresis fraction given.
        hysteresis: f64,
        /// The warning fraction in force.
        warning: f64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ZeroLimit => f.write_str("memory limit must be at least 1 byte, got 0"),
            Self::FractionOutOfRange {
                name,
                value,
                allowed,
            } => {
                write!(f, "{name} threshold must be in {allowed}, got {value}")
            }
            Self::WarningNotBelowCritical { warning, critical } => write!(
                f,
                "warning threshold ({warning}) must be below critical threshold ({critical})"
            ),
            Self::HysteresisTooLarge {
                hysteresis,
                warning,
            } => write!(
                f,
                "hysteresis ({hysteresis}) must be below the warning threshold ({warning})"
            ),
        }
    }
}

impl Error for ConfigError {}

impl LevelConfig {
    /// A config with the given limit and thresholds, the default hysteresis
    /// ([`DEFAULT_HYSTERESIS_FRACTION`]) and dwell ([`DEFAULT_MIN_DWELL`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for a zero limit,
    /// [`ConfigError::FractionOutOfRange`] for a fraction outside (0, 1],
    /// [`ConfigError::WarningNotBelowCritical`] unless warning < critical,
    /// [`ConfigError::HysteresisTooLarge`] if the default hysteresis is not
    /// below the warning threshold.
    pub fn new(limit_bytes: u64, warning: f64, critical: f64) -> Result<Self, ConfigError> {
        Self::with_fractions(limit_bytes, warning, critical, DEFAULT_HYSTERESIS_FRACTION)
    }

    /// A config with the given limit, thresholds and hysteresis, and the
    /// default dwell, all checked together (so a warning threshold below
    /// the default hysteresis works with a smaller hysteresis).
    ///
    /// # Errors
    ///
    /// As [`LevelConfig::new`], and [`ConfigError::FractionOutOfRange`]
    /// unless `hysteresis` is in [0, 1), [`ConfigError::HysteresisTooLarge`]
    /// unless it is below the warning threshold.
    pub fn with_fractions(
        limit_bytes: u64,
        warning: f64,
        critical: f64,
        hysteresis: f64,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            limit_bytes,
            warning_fraction: warning,
            critical_fraction: critical,
            hysteresis_fraction: hysteresis,
            min_dwell: DEFAULT_MIN_DWELL,
        };
        config.validate()
    }

    /// A config with the given limit and every other value at its default.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for a zero limit.
    pub fn with_limit(limit_bytes: u64) -> Result<Self, ConfigError> {
        Self::new(
            limit_bytes,
            DEFAULT_WARNING_FRACTION,
            DEFAULT_CRITICAL_FRACTION,
        )
    }

    /// This config with another hysteresis, as a fraction of the limit.
    ///
    /// # Errors
    ///
    /// [`ConfigError::FractionOutOfRange`] unless `hysteresis` is in [0, 1),
    /// [`ConfigError::HysteresisTooLarge`] unless it is below the warning
    /// threshold.
    pub fn with_hysteresis(self, hysteresis: f64) -> Result<Self, ConfigError> {
        Self {
            hysteresis_fraction: hysteresis,
            ..self
        }
        .validate()
    }

    /// This config with another minimum dwell (any duration, zero included).
    pub fn with_min_dwell(self, min_dwell: Duration) -> Self {
        Self { min_dwell, ..self }
    }

    /// The memory limit.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// The warning threshold as a fraction of the limit.
    pub fn warning_fraction(&self) -> f64 {
        self.warning_fraction
    }

    /// The critical threshold as a fraction of the limit.
    pub fn critical_fraction(&self) -> f64 {
        self.critical_fraction
    }

    /// The hysteresis as a fraction of the limit.
    pub fn hysteresis_fraction(&self) -> f64 {
        self.hysteresis_fraction
    }

    /// The minimum time after a transition before the level may step down.
    pub fn min_dwell(&self) -> Duration {
        self.min_dwell
    }

    /// Usage at or above this enters warning.
    pub fn warning_bytes(&self) -> u64 {
        self.fraction_bytes(self.warning_fraction)
    }

    /// Usage at or above this enters critical.
    pub fn critical_bytes(&self) -> u64 {
        self.fraction_bytes(self.critical_fraction)
    }

    /// The hysteresis in bytes.
    pub fn hysteresis_bytes(&self) -> u64 {
        self.fraction_bytes(self.hysteresis_fraction)
    }

    /// Usage must be below this to return to normal.
    pub fn warning_exit_bytes(&self) -> u64 {
        self.warning_bytes().saturating_sub(self.hysteresis_bytes())
    }

    /// Usage must be below this to leave critical.
    pub fn critical_exit_bytes(&self) -> u64 {
        self.critical_bytes()
            .saturating_sub(self.hysteresis_bytes())
    }

    /// The level `usage_bytes` enters when rising: the highest threshold it
    /// is at or above. Hysteresis and dwell play no part here.
    pub fn entry_level(&self, usage_bytes: u64) -> PressureLevel {
        if usage_bytes >= self.critical_bytes() {
            PressureLevel::Critical
        } else if usage_bytes >= self.warning_bytes() {
            PressureLevel::Warning
        } else {
            PressureLevel::Normal
        }
    }

    fn fraction_bytes(&self, fraction: f64) -> u64 {
        // Validated fractions are in [0, 1], so the product is in
        // [0, limit] and the cast cannot saturate.
        (self.limit_bytes as f64 * fraction).round() as u64
    }

    fn validate(self) -> Result<Self, ConfigError> {
        if self.limit_bytes == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        for (name, value) in [
            ("warning", self.warning_fraction),
            ("critical", self.critical_fraction),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(ConfigError::FractionOutOfRange {
                    name,
                    value,
                    allowed: "(0, 1]",
                });
            }
        }
        let hysteresis = self.hysteresis_fraction;
        if !(0.0..1.0).contains(&hysteresis) {
            return Err(ConfigError::FractionOutOfRange {
                name: "hysteresis",
                value: hysteresis,
                allowed: "[0, 1)",
            });
        }
        if self.warning_fraction >= self.critical_fraction
            || self.warning_bytes() >= self.critical_bytes()
        {
            return Err(ConfigError::WarningNotBelowCritical {
                warning: self.warning_fraction,
                critical: self.critical_fraction,
            });
        }
        if hysteresis >= self.warning_fraction || self.hysteresis_bytes() >= self.warning_bytes() {
            return Err(ConfigError::HysteresisTooLarge {
                hysteresis,
                warning: self.warning_fraction,
            });
        }
        Ok(self)
    }
}

/// A level change decided by [`LevelMachine::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChange {
    /// The level before.
    pub from: PressureLevel,
    /// The level after.
    pub to: PressureLevel,
    /// The transition's number: 1 for the first, one more for each after.
    pub sequence: u64,
}

/// Decides the pressure level from usage samples.
///
/// # Pressure semantics
///
/// With `W`, `C` the warning and critical thresholds in bytes, `H` the
/// hysteresis in bytes and `D` the minimum dwell:
///
/// - **Entering.** Usage `>= W` enters warning, `>= C` enters critical; the
///   exact boundary value enters.
/// - **Up is immediate.** A rise takes effect on the sample that shows it,
///   whatever the dwell, and may jump from normal straight to critical.
/// - **Down needs margin and dwell.** The level steps down only when usage
///   is below the level's exit point (`C - H` for critical, `W - H` for
///   warning) *and* at least `D` has passed since the last transition (up or
///   down). Until both hold, the level stays.
/// - **Where down goes.** Critical goes to warning, or straight to normal
///   if usage is already below `W - H`. Normal is reached only below
///   `W - H`, never merely below `W`.
/// - **Time.** `now` is the time of the sample. If it is earlier than the
///   last transition (a clock going backwards), no time counts as passed.
///
/// A signal hovering at a threshold therefore produces one transition, not
/// one per sample.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use mempressure::level::PressureLevel;
/// use mempressure::machine::{LevelConfig, LevelMachine};
///
/// // Warning at 800 bytes (exit below 750), critical at 900, dwell 1 s.
/// let mut machine = LevelMachine::new(LevelConfig::with_limit(1000)?);
/// let t0 = Instant::now();
/// assert_eq!(machine.observe(800, t0).map(|c| c.to), Some(PressureLevel::Warning));
/// // Below the threshold but not below its exit point: no change.
/// assert_eq!(machine.observe(760, t0 + Duration::from_secs(5)), None);
/// let change = machine.observe(700, t0 + Duration::from_secs(5)).unwrap();
/// assert_eq!((change.to, change.sequence), (PressureLevel::Normal, 2));
/// # Ok::<(), mempressure::machine::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LevelMachine {
    config: LevelConfig,
    level: PressureLevel,
    sequence: u64,
    last_transition_at: Option<Instant>,
}

impl LevelMachine {
    /// A machine at normal, with no transition yet (sequence 0).
    pub fn new(config: LevelConfig) -> Self {
        Self {
            config,
            level: PressureLevel::Normal,
            sequence: 0,
            last_transition_at: None,
        }
    }

    /// The current level.
    pub fn level(&self) -> PressureLevel {
        self.level
    }

    /// The number of the last transition (0 before the first).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When the last transition happened, if one has.
    pub fn last_transition_at(&self) -> Option<Instant> {
        self.last_transition_at
    }

    /// The config in force.
    pub fn config(&self) -> &LevelConfig {
        &self.config
    }

    /// Replaces the config, for example after the limit changed at run time.
    ///
    /// The level, sequence number and time of the last transition are kept;
    /// the next [`observe`](Self::observe) judges its sample by the new
    /// thresholds (so a rise shows at once, a fall still needs the dwell).
    pub fn set_config(&mut self, config: LevelConfig) {
        self.config = config;
    }

    /// Whether `usage_bytes` would take the level up (rises ignore dwell).
    pub fn would_rise(&self, usage_bytes: u64) -> bool {
        self.config.entry_level(usage_bytes) > self.level
    }

    /// Feeds one usage sample taken at `now`; returns the change it causes,
    /// if any. See the type's "Pressure semantics".
    pub fn observe(&mut self, usage_bytes: u64, now: Instant) -> Option<LevelChange> {
        let entry = self.config.entry_level(usage_bytes);
        let to = if entry > self.level {
            entry
        } else {
            let down = self.step_down_target(usage_bytes)?;
            if !self.dwell_elapsed(now) {
                return None;
            }
            down
        };
        let change = LevelChange {
            from: self.level,
            to,
            sequence: self.sequence + 1,
        };
        self.level = to;
        self.sequence = change.sequence;
        self.last_transition_at = Some(now);
        Some(change)
    }

    /// Where the level would step down to for `usage_bytes`, ignoring dwell.
    fn step_down_target(&self, usage_bytes: u64) -> Option<PressureLevel> {
        let below_warning_exit = usage_bytes < self.config.warning_exit_bytes();
        match self.level {
            PressureLevel::Normal => None,
            PressureLevel::Warning => below_warning_exit.then_some(PressureLevel::Normal),
            PressureLevel::Critical if below_warning_exit => Some(PressureLevel::Normal),
            PressureLevel::Critical => {
                (usage_bytes < self.config.critical_exit_bytes()).then_some(PressureLevel::Warning)
            }
        }
    }

    fn dwell_elapsed(&self, now: Instant) -> bool {
        match self.last_transition_at {
            None => true,
            Some(at) => now.saturating_duration_since(at) >= self.config.min_dwell,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_warning_threshold_takes_a_smaller_hysteresis() {
        // The default hysteresis does not fit under a 0.04 warning threshold,
        // but a smaller one given with it does.
        assert!(matches!(
            LevelConfig::new(1000, 0.04, 0.5),
            Err(ConfigError::HysteresisTooLarge { .. })
        ));
        let config = LevelConfig::with_fractions(1000, 0.04, 0.5, 0.01).unwrap();
        assert_eq!(config.hysteresis_fraction(), 0.01);
        assert!(matches!(
            LevelConfig::with_fractions(1000, 0.04, 0.5, 0.04),
            Err(ConfigError::HysteresisTooLarge { .. })
        ));
    }

    #[test]
    fn config_rejects_each_bad_input_with_its_own_error() {
        assert_eq!(LevelConfig::new(0, 0.8, 0.9), Err(ConfigError::ZeroLimit));
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(matches!(
                LevelConfig::new(1000, bad, 0.9),
                Err(ConfigError::FractionOutOfRange {
                    name: "warning",
                    ..
                })
            ));
            assert!(matches!(
                LevelConfig::new(1000, 0.5, bad),
                Err(ConfigError::FractionOutOfRange {
                    name: "critical",
                    ..
                })
            ));
        }
        assert!(matches!(
            LevelConfig::new(1000, 0.9, 0.9),
            Err(ConfigError::WarningNotBelowCritical { .. })
        ));
        // Distinct fractions that round to the same byte are refused too.
        assert!(matches!(
            LevelConfig::new(1, 0.5, 0.6),
            Err(ConfigError::WarningNotBelowCritical { .. })
        ));
        let config = LevelConfig::with_limit(1000).unwrap();
        assert!(matches!(
            config.with_hysteresis(0.8),
            Err(ConfigError::HysteresisTooLarge { .. })
        ));
        assert!(matches!(
            config.with_hysteresis(-0.01),
            Err(ConfigError::FractionOutOfRange {
                name: "hysteresis",
                ..
            })
        ));
    }

    #[test]
    fn config_error_messages_name_the_input() {
        let err = LevelConfig::new(1000, 1.5, 0.9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "warning threshold must be in (0, 1], got 1.5"
        );
    }

    #[test]
    fn config_derives_byte_thresholds_from_fractions() {
        let config = LevelConfig::with_limit(1000).unwrap();
        assert_eq!(config.warning_bytes(), 800);
        assert_eq!(config.critical_bytes(), 900);
        assert_eq!(config.hysteresis_bytes(), 50);
        assert_eq!(config.warning_exit_bytes(), 750);
        assert_eq!(config.critical_exit_bytes(), 850);
        assert_eq!(config.min_dwell(), DEFAULT_MIN_DWELL);
    }

    #[test]
    fn rise_is_immediate_even_within_dwell() {
        let config = LevelConfig::with_limit(1000).unwrap();
        let mut machine = LevelMachine::new(config);
        let t0 = Instant::now();
        assert!(machine.observe(800, t0).is_some());
        // Same instant: no dwell has passed, yet the rise shows.
        let change = machine.observe(900, t0).unwrap();
        assert_eq!(
            (change.from, change.to),
            (PressureLevel::Warning, PressureLevel::Critical)
        );
    }
}
