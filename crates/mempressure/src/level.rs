//! Pressure levels and transitions.

/// How close usage is to the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PressureLevel {
    /// Below the warning threshold.
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
