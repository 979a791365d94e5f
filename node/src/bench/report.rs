//! What a bench prints: its figures for people, and with `--json` one JSON object on the last
//! line (`ops_per_s`, `p50_ms`, `p99_ms`, `p999_ms`, plus the bench's own fields).
//!
//! Latencies are kept as raw nanosecond samples and sorted once at the end: the largest run
//! records a few million samples, so exact percentiles cost less than a histogram's care. This
//! file never measures anything itself.

use serde_json::{Map, Value};
use std::time::Duration;

/// Latency samples of one kind of operation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Latencies {
    samples_ns: Vec<u64>,
}

impl Latencies {
    pub(crate) fn with_capacity(capacity: usize) -> Latencies {
        Latencies {
            samples_ns: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        self.samples_ns
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn merge(&mut self, other: Latencies) {
        self.samples_ns.extend(other.samples_ns);
    }

    /// p50, p99 and p99.9 (nearest rank), all zero when there are no samples.
    pub(crate) fn percentiles(&mut self) -> Percentiles {
        self.samples_ns.sort_unstable();
        let at = |quantile: f64| -> f64 {
            if self.samples_ns.is_empty() {
                return 0.0;
            }
            let rank = (quantile * self.samples_ns.len() as f64).ceil() as usize;
            let index = rank.clamp(1, self.samples_ns.len()) - 1;
            self.samples_ns[index] as f64 / 1e6
        };
        Percentiles {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}  p99 {}  p99.9 {} ms",
            milliseconds(self.p50_ms),
            milliseconds(self.p99_ms),
            milliseconds(self.p999_ms)
        )
    }
}

/// A latency in milliseconds with the digits that matter at its size.
pub(crate) fn milliseconds(value_ms: f64) -> String {
    if value_ms >= 100.0 {
        format!("{value_ms:.0}")
    } else if value_ms >= 1.0 {
        format!("{value_ms:.2}")
    } else {
        format!("{value_ms:.4}")
    }
}

/// An integer with thousands separators: `1,234,567`.
pub(crate) fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One bench's result: the headline figures, the bench's own fields, and the lines people read.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    bench: &'static str,
    ops_per_s: f64,
    latency: Percentiles,
    fields: Map<String, Value>,
    lines: Vec<String>,
}

impl Report {
    pub(crate) fn new(bench: &'static str, ops_per_s: f64, latency: Percentiles) -> Report {
        Report {
            bench,
            ops_per_s,
            latency,
            fields: Map::new(),
            lines: Vec::new(),
        }
    }

    /// Adds a field to the JSON object.
    pub(crate) fn field(&mut self, name: &str, value: impl Into<Value>) -> &mut Report {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    /// Adds a line to the printed figures.
    pub(crate) fn line(&mut self, line: impl Into<String>) -> &mut Report {
        self.lines.push(line.into());
        self
    }

    /// The JSON object (`bench`, `ops_per_s`, `p50_ms`, `p99_ms`, `p999_ms`, then the fields).
    pub(crate) fn json(&self) -> Value {
        let round = |value: f64, digits: i32| {
            let scale = 10f64.powi(digits);
            (value * scale).round() / scale
        };
        let mut object = Map::new();
        object.insert("bench".to_owned(), Value::from(self.bench));
        object.insert(
            "ops_per_s".to_owned(),
            Value::from(round(self.ops_per_s, 1)),
        );
        object.insert(
            "p50_ms".to_owned(),
            Value::from(round(self.latency.p50_ms, 4)),
        );
        object.insert(
            "p99_ms".to_owned(),
            Value::from(round(self.latency.p99_ms, 4)),
        );
        object.insert(
            "p999_ms".to_owned(),
            Value::from(round(self.latency.p999_ms, 4)),
        );
        for (name, value) in &self.fields {
            object.insert(name.clone(), value.clone());
        }
        Value::Object(object)
    }

    /// Prints the lines, then (with `json`) the JSON object as the last line.
    pub(crate) fn print(&self, json: bool) {
        for line in &self.lines {
            println!("{line}");
        }
        if json {
            println!("{}", self.json());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut latencies = Latencies::default();
        assert_eq!(latencies.percentiles(), Percentiles::default());
        for ms in 1..=1000u64 {
            latencies.record(Duration::from_millis(ms));
        }
        let percentiles = latencies.percentiles();
        assert_eq!(percentiles.p50_ms, 500.0);
        assert_eq!(percentiles.p99_ms, 990.0);
        assert_eq!(percentiles.p999_ms, 999.0);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(milliseconds(0.01234), "0.0123");
        assert_eq!(milliseconds(12.345), "12.35");
        assert_eq!(milliseconds(1234.5), "1234");
    }

    #[test]
    fn the_json_object_has_the_named_fields() {
        let mut report = Report::new(
            "apply",
            1234.56,
            Percentiles {
                p50_ms: 1.0,
                p99_ms: 2.0,
                p999_ms: 3.0,
            },
        );
        report.field("batch", 8190).line("hello");
        let json = report.json();
        assert_eq!(json["bench"], "apply");
        assert_eq!(json["ops_per_s"], 1234.6);
        assert_eq!(json["p999_ms"], 3.0);
        assert_eq!(json["batch"], 8190);
    }
}
