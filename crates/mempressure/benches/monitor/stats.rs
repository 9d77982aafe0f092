//! Order statistics over samples, and the little JSON the report needs.

use std::fmt::Write as _;
use std::time::Duration;

/// Order statistics of one series of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples` (any unit); all zero when there are none.
    pub fn of(samples: &[f64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            // Nearest rank: the smallest sample with at least q of all at or
            // below it.
            let index = (q * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        Summary {
            n: sorted.len(),
            min: sorted[0],
            p10: rank(0.10),
            p25: rank(0.25),
            p50: rank(0.50),
            p75: rank(0.75),
            p90: rank(0.90),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        }
    }

    /// The same for durations, in microseconds.
    pub fn of_durations_us(samples: &[Duration]) -> Summary {
        let micros: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        Summary::of(&micros)
    }

    /// A JSON object with every statistic.
    pub fn to_json(self) -> String {
        format!(
            "{{\"n\":{},\"min\":{},\"p10\":{},\"p25\":{},\"p50\":{},\"p75\":{},\"p90\":{},\
             \"p99\":{},\"max\":{},\"mean\":{}}}",
            self.n,
            num(self.min),
            num(self.p10),
            num(self.p25),
            num(self.p50),
            num(self.p75),
            num(self.p90),
            num(self.p99),
            num(self.max),
            num(self.mean)
        )
    }
}

/// A number as JSON: three decimals, `null` for what JSON cannot hold.
pub fn num(value: f64) -> String {
    if value.is_finite() {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        "null".to_owned()
    }
}

/// A string as a JSON string literal.
pub fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object from `(key, already-encoded value)` pairs, in order.
pub fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", string(key)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A JSON array of already-encoded values.
pub fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// Microseconds for a table cell: one decimal below 100, none above.
pub fn us(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// Bytes for a table cell, in KiB.
pub fn kib(value: f64) -> String {
    format!("{:.0} KiB", value / 1024.0)
}
