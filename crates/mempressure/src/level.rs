//! Pressure levels and transitions.

use std::fmt;

/// How close usage is to the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum PressureLevel {
    /// Below the warning threshold.
    #[default]
    Normal = 0,
    /// At or above the warning threshold.
    Warning = 1,
    /// At or above the critical threshold.
    Critical = 2,
}

impl PressureLevel {
    /// Every level, lowest first.
    pub const ALL: [PressureLevel; 3] = [Self::Normal, Self::Warning, Self::Critical];

    /// The lower-case name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for PressureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The published pressure level, readable from any thread at the cost of one
/// relaxed atomic load.
///
/// The monitor stores the level together with the sequence number of the
/// transition that set it; everyone else reads. [`load`](Self::load) is
/// meant for hot paths (an accept loop, a cache insert) and may be called on
/// every operation. [`snapshot`](Self::snapshot) also returns the sequence
/// number, so a reader can tell two visits to the same level apart.
///
/// # Pressure semantics
///
/// The value is whatever the last [`store`](Self::store) wrote. A reader on
/// another thread may see a store a little late (relaxed ordering), never a
/// torn or invented value: level and sequence number live in one word.
#[derive(Debug)]
pub struct AtomicLevel {
    state: state::AtomicState,
}

impl AtomicLevel {
    /// A published level that starts at `level` with sequence number 0.
    pub const fn new(level: PressureLevel) -> Self {
        Self {
            state: state::AtomicState::new(level, 0),
        }
    }

    /// The current level: one relaxed atomic load.
    #[inline]
    pub fn load(&self) -> PressureLevel {
        self.state.load_relaxed().level()
    }

    /// The current level and the sequence number of the transition that set
    /// it.
    ///
    /// A reader that sees sequence number `n` also sees everything the
    /// publisher wrote before storing `n` (acquire ordering).
    pub fn snapshot(&self) -> (PressureLevel, u64) {
        let snapshot = self.state.load_acquire();
        (snapshot.level(), snapshot.sequence())
    }

    /// Publishes `level`, set by the transition numbered `sequence`.
    ///
    /// Only the owner of the level (the monitor, through its
    /// [`Publisher`](crate::subscribe::Publisher)) should call this. Sequence
    /// numbers keep their low 62 bits; a process does not live long enough
    /// to publish more transitions than that.
    pub fn store(&self, level: PressureLevel, sequence: u64) {
        self.state.store(level, sequence);
    }
}

impl Default for AtomicLevel {
    fn default() -> Self {
        Self::new(PressureLevel::Normal)
    }
}

/// Keeps the packed level-and-sequence word away from the rest of the code.
mod state {
    use super::PressureLevel;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Bits of the packed word that hold the level.
    const LEVEL_BITS: u32 = 2;
    /// Mask selecting the level bits.
    const LEVEL_MASK: u64 = (1 << LEVEL_BITS) - 1;

    /// A plain copy of the packed word: level in the low two bits, sequence
    /// number above them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct StateSnapshot(u64);

    impl StateSnapshot {
        /// Packs `level` and the low 62 bits of `sequence`.
        const fn pack(level: PressureLevel, sequence: u64) -> Self {
            Self((sequence << LEVEL_BITS) | level as u64)
        }

        /// The level in the low bits. The value 3 is never stored; it
        /// decodes as critical so a corrupted word errs on the safe side.
        pub(super) fn level(self) -> PressureLevel {
            match self.0 & LEVEL_MASK {
                0 => PressureLevel::Normal,
                1 => PressureLevel::Warning,
                _ => PressureLevel::Critical,
            }
        }

        /// The sequence number of the transition that set the level.
        pub(super) fn sequence(self) -> u64 {
            self.0 >> LEVEL_BITS
        }
    }

    /// The packed word itself.
    #[derive(Debug)]
    pub(super) struct AtomicState(AtomicU64);

    impl AtomicState {
        /// A word holding `level` and `sequence`.
        pub(super) const fn new(level: PressureLevel, sequence: u64) -> Self {
            Self(AtomicU64::new(StateSnapshot::pack(level, sequence).0))
        }

        /// Loads with `Relaxed` ordering: the hot-path read. The level is a
        /// hint acted on by itself; no other memory is read on the strength
        /// of it, so no ordering with other memory is needed. Relaxed still
        /// guarantees the word is never torn and that one thread never sees
        /// the values go backwards in modification order.
        #[inline]
        pub(super) fn load_relaxed(&self) -> StateSnapshot {
            StateSnapshot(self.0.load(Ordering::Relaxed))
        }

        /// Loads with `Acquire` ordering, pairing with the `Release` in
        /// [`store`](Self::store): whoever sees a sequence number also sees
        /// what the publisher wrote before storing it (for example the
        /// transition in the subscribers' buffer).
        pub(super) fn load_acquire(&self) -> StateSnapshot {
            StateSnapshot(self.0.load(Ordering::Acquire))
        }

        /// Stores with `Release` ordering; see
        /// [`load_acquire`](Self::load_acquire). There is one writer, so a
        /// plain store is enough: no read-modify-write is needed.
        pub(super) fn store(&self, level: PressureLevel, sequence: u64) {
            self.0
                .store(StateSnapshot::pack(level, sequence).0, Ordering::Release);
        }
    }
}

/// Which reading decided a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UsageSource {
    /// The allocator shim's live-byte total.
    #[default]
    Tracked,
    /// jemalloc `stats.resident`.
    JemallocResident,
    /// The process's resident set size from the OS.
    ProcessResident,
    /// Anonymous resident memory (Linux `RssAnon`), file pages left out.
    AnonResident,
    /// The cgroup's charged memory, reclaimable file pages left out.
    CgroupUsage,
    /// macOS `phys_footprint`.
    PhysFootprint,
    /// A value injected by a test or an operator, not a reading.
    Injected,
}

impl UsageSource {
    /// The snake-case name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tracked => "tracked",
            Self::JemallocResident => "jemalloc_resident",
            Self::ProcessResident => "process_resident",
            Self::AnonResident => "anon_resident",
            Self::CgroupUsage => "cgroup_usage",
            Self::PhysFootprint => "phys_footprint",
            Self::Injected => "injected",
        }
    }
}

impl fmt::Display for UsageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened: the figures behind the usage it was decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The reading the usage figure came from.
    pub decided_by: UsageSource,
    /// The allocator shim's live-byte total at the time.
    pub tracked_bytes: u64,
    /// The OS or jemalloc reading the tracked total was corrected against,
    /// if one was taken.
    pub measured_bytes: Option<u64>,
    /// The largest components, largest first, with their live bytes.
    pub top_components: Vec<(&'static str, u64)>,
}

impl fmt::Display for Reason {
    /// `decided by jemalloc_resident (tracked 900 bytes, measured 950 bytes;
    /// top segment_cache=600 index_cache=200)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decided by {} (tracked {} bytes",
            self.decided_by, self.tracked_bytes
        )?;
        if let Some(measured_bytes) = self.measured_bytes {
            write!(f, ", measured {measured_bytes} bytes")?;
        }
        if !self.top_components.is_empty() {
            f.write_str("; top")?;
            for (name, bytes) in &self.top_components {
                write!(f, " {name}={bytes}")?;
            }
        }
        f.write_str(")")
    }
}

/// One change of pressure level, as subscribers and logs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The level before.
    pub from: PressureLevel,
    /// The level after.
    pub to: PressureLevel,
    /// The usage figure the change was decided on.
    pub usage_bytes: u64,
    /// The memory limit in force.
    pub limit_bytes: u64,
    /// Numbers transitions from 1, one more for each.
    pub sequence: u64,
    /// Which reading decided it, and the figures around it.
    pub reason: Reason,
}

impl Transition {
    /// Whether pressure rose.
    pub fn is_escalation(&self) -> bool {
        self.to > self.from
    }

    /// Usage as a fraction of the limit (0 when the limit is 0).
    pub fn usage_fraction(&self) -> f64 {
        if self.limit_bytes == 0 {
            return 0.0;
        }
        self.usage_bytes as f64 / self.limit_bytes as f64
    }
}

impl fmt::Display for Transition {
    /// `#3 warning -> critical: usage 950 of 1000 bytes (95.0%), decided by
    /// ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} -> {}: usage {} of {} bytes ({:.1}%), {}",
            self.sequence,
            self.from,
            self.to,
            self.usage_bytes,
            self.limit_bytes,
            self.usage_fraction() * 100.0,
            self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason() -> Reason {
        Reason {
            decided_by: UsageSource::JemallocResident,
            tracked_bytes: 900,
            measured_bytes: Some(950),
            top_components: vec![("segment_cache", 600), ("index_cache", 200)],
        }
    }

    #[test]
    fn atomic_level_round_trips_every_level_and_sequence() {
        let level = AtomicLevel::default();
        assert_eq!(level.snapshot(), (PressureLevel::Normal, 0));
        for (sequence, to) in [(1, PressureLevel::Critical), (2, PressureLevel::Warning)] {
            level.store(to, sequence);
            assert_eq!(level.load(), to);
            assert_eq!(level.snapshot(), (to, sequence));
        }
        // The largest sequence that fits keeps the level intact.
        let max_sequence = u64::MAX >> 2;
        level.store(PressureLevel::Warning, max_sequence);
        assert_eq!(level.snapshot(), (PressureLevel::Warning, max_sequence));
    }

    #[test]
    fn transition_display_names_levels_figures_and_reason() {
        let transition = Transition {
            from: PressureLevel::Warning,
            to: PressureLevel::Critical,
            usage_bytes: 950,
            limit_bytes: 1000,
            sequence: 3,
            reason: reason(),
        };
        assert_eq!(
            transition.to_string(),
            "#3 warning -> critical: usage 950 of 1000 bytes (95.0%), decided by \
             jemalloc_resident (tracked 900 bytes, measured 950 bytes; top \
             segment_cache=600 index_cache=200)"
        );
        assert!(transition.is_escalation());
    }

    #[test]
    fn reason_display_leaves_out_missing_figures() {
        let reason = Reason {
            decided_by: UsageSource::Tracked,
            tracked_bytes: 10,
            measured_bytes: None,
            top_components: Vec::new(),
        };
        assert_eq!(reason.to_string(), "decided by tracked (tracked 10 bytes)");
    }

    #[test]
    fn usage_source_names_are_distinct_snake_case() {
        let all = [
            UsageSource::Tracked,
            UsageSource::JemallocResident,
            UsageSource::ProcessResident,
            UsageSource::AnonResident,
            UsageSource::CgroupUsage,
            UsageSource::PhysFootprint,
            UsageSource::Injected,
        ];
        let mut names: Vec<_> = all.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
