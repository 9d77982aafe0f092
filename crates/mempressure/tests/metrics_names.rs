//! The exact metric names, labels and help texts the recorder emits, read
//! from the Prometheus scrape text without HTTP.
#![cfg(feature = "prometheus")]

use mempressure::jemalloc::JemallocStats;
use mempressure::level::PressureLevel;
use mempressure::metrics::{MetricsRecorder, TickMetrics};
use mempressure::os::ProcessMemory;
use mempressure::prometheus::render_with;

const COMPONENTS: [&str; 5] = [
    "connections",
    "request_buffers",
    "segment_cache",
    "index_cache",
    "other",
];

/// A tick with every optional figure present.
fn full_tick<'a>(
    components: &'a [(&'static str, u64)],
    reserved: &'a [(&'static str, u64)],
) -> TickMetrics<'a> {
    TickMetrics {
        limit_bytes: 1 << 30,
        warning_bytes: 858_993_459,
        critical_bytes: 966_367_641,
        usage_bytes: 900_000_000,
        tracked_bytes: 880_000_000,
        correction_bytes: -12_345,
        level: PressureLevel::Warning,
        components,
        reserved,
        process: Some(ProcessMemory {
            resident_bytes: 950_000_000,
            virtual_bytes: 4_000_000_000,
            anon_resident_bytes: Some(920_000_000),
            ..Default::default()
        }),
        jemalloc: Some(JemallocStats {
            allocated_bytes: 870_000_000,
            active_bytes: 880_000_000,
            resident_bytes: 890_000_000,
            mapped_bytes: 900_000_000,
            retained_bytes: 100_000_000,
            metadata_bytes: 10_000_000,
        }),
        cgroup_usage_bytes: Some(960_000_000),
        cgroup_limit_bytes: Some(2 << 30),
        tick_seconds: 0.0004,
    }
}

/// The sample lines (no comments) of a scrape text.
fn samples(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect()
}

fn has_sample(text: &str, series: &str, value: &str) -> bool {
    samples(text).contains(&format!("{series} {value}").as_str())
}

#[test]
fn a_tick_emits_the_seed_names_with_their_labels() {
    let recorder = MetricsRecorder::new("streamline", &COMPONENTS).unwrap();
    let components = [("connections", 1000), ("segment_cache", 5000), ("other", 7)];
    let text = render_with(|| recorder.record_tick(&full_tick(&components, &[])));

    for (series, value) in [
        (
            r#"streamline_process_memory_bytes{type="resident"}"#,
            "950000000",
        ),
        (
            r#"streamline_process_memory_bytes{type="virtual"}"#,
            "4000000000",
        ),
        (
            r#"streamline_memory_bytes{component="connections"}"#,
            "1000",
        ),
        (
            r#"streamline_memory_bytes{component="request_buffers"}"#,
            "0",
        ),
        (
            r#"streamline_memory_bytes{component="segment_cache"}"#,
            "5000",
        ),
        (r#"streamline_memory_bytes{component="index_cache"}"#, "0"),
        (r#"streamline_memory_bytes{component="other"}"#, "7"),
        (r#"streamline_memory_pressure{level="normal"}"#, "0"),
        (r#"streamline_memory_pressure{level="warning"}"#, "1"),
        (r#"streamline_memory_pressure{level="critical"}"#, "0"),
    ] {
        assert!(
            has_sample(&text, series, value),
            "{series} {value} missing from\n{text}"
        );
    }
}

#[test]
fn a_tick_emits_budget_correction_and_readings() {
    let recorder = MetricsRecorder::new("streamline", &COMPONENTS).unwrap();
    let reserved = [("request_buffers", 4096)];
    let text = render_with(|| recorder.record_tick(&full_tick(&[], &reserved)));

    for (series, value) in [
        ("streamline_memory_limit_bytes", "1073741824"),
        ("streamline_memory_warning_threshold_bytes", "858993459"),
        ("streamline_memory_critical_threshold_bytes", "966367641"),
        ("streamline_memory_usage_bytes", "900000000"),
        ("streamline_memory_tracked_bytes", "880000000"),
        ("streamline_memory_correction_bytes", "-12345"),
        (
            r#"streamline_memory_reserved_bytes{component="request_buffers"}"#,
            "4096",
        ),
        (
            r#"streamline_memory_reserved_bytes{component="connections"}"#,
            "0",
        ),
        ("streamline_process_anonymous_resident_bytes", "920000000"),
        ("streamline_jemalloc_allocated_bytes", "870000000"),
        ("streamline_jemalloc_active_bytes", "880000000"),
        ("streamline_jemalloc_resident_bytes", "890000000"),
        ("streamline_jemalloc_mapped_bytes", "900000000"),
        ("streamline_jemalloc_retained_bytes", "100000000"),
        ("streamline_jemalloc_metadata_bytes", "10000000"),
        ("streamline_cgroup_memory_usage_bytes", "960000000"),
        ("streamline_cgroup_memory_limit_bytes", "2147483648"),
        ("streamline_memory_monitor_tick_seconds_count", "1"),
        (
            r#"streamline_memory_monitor_tick_seconds_bucket{le="0.0005"}"#,
            "1",
        ),
    ] {
        assert!(
            has_sample(&text, series, value),
            "{series} {value} missing from\n{text}"
        );
    }
}

#[test]
fn missing_readings_are_left_out_rather_than_zero() {
    let recorder = MetricsRecorder::new("streamline", &COMPONENTS).unwrap();
    let mut tick = full_tick(&[], &[]);
    tick.process = None;
    tick.jemalloc = None;
    tick.cgroup_usage_bytes = None;
    tick.cgroup_limit_bytes = None;
    let text = render_with(|| recorder.record_tick(&tick));

    for absent in [
        "jemalloc_",
        "cgroup_",
        "process_memory_bytes",
        "anonymous_resident",
    ] {
        assert!(!text.contains(absent), "{absent} present in\n{text}");
    }
    assert!(
        has_sample(&text, "streamline_memory_usage_bytes", "900000000"),
        "{text}"
    );
}

#[test]
fn events_are_counted_with_bounded_labels() {
    let recorder = MetricsRecorder::new("streamline", &COMPONENTS[..4]).unwrap();
    let text = render_with(|| {
        recorder.record_transition(PressureLevel::Normal, PressureLevel::Warning);
        recorder.record_transition(PressureLevel::Normal, PressureLevel::Warning);
        recorder.record_transition(PressureLevel::Warning, PressureLevel::Critical);
        recorder.record_rejected_connection();
        recorder.record_failed_reservation("request_buffers");
        recorder.record_failed_reservation("undeclared");
        recorder.record_reclaimed(4096);
        recorder.record_reclaimed(1024);
    });

    let transitions = "streamline_memory_pressure_transitions_total";
    for (series, value) in [
        (
            format!(r#"{transitions}{{from="normal",to="warning"}}"#),
            "2",
        ),
        (
            format!(r#"{transitions}{{from="warning",to="critical"}}"#),
            "1",
        ),
        (
            format!(r#"{transitions}{{from="critical",to="normal"}}"#),
            "0",
        ),
        (
            "streamline_memory_rejected_connections_total".to_owned(),
            "1",
        ),
        (
            r#"streamline_memory_reservation_failures_total{component="request_buffers"}"#
                .to_owned(),
            "1",
        ),
        (
            r#"streamline_memory_reservation_failures_total{component="other"}"#.to_owned(),
            "1",
        ),
        ("streamline_memory_reclaimed_bytes_total".to_owned(), "5120"),
    ] {
        assert!(
            has_sample(&text, &series, value),
            "{series} {value} missing from\n{text}"
        );
    }
    assert!(!text.contains("undeclared"), "{text}");
    assert_eq!(recorder.components(), &COMPONENTS);
}

#[test]
fn undeclared_components_in_a_tick_count_as_other() {
    let recorder = MetricsRecorder::new("streamline", &["connections"]).unwrap();
    let components = [("connections", 10), ("mystery", 5), ("other", 1)];
    let text = render_with(|| recorder.record_tick(&full_tick(&components, &[])));
    assert!(
        has_sample(&text, r#"streamline_memory_bytes{component="other"}"#, "6"),
        "{text}"
    );
    assert!(!text.contains("mystery"), "{text}");
}

#[test]
fn every_metric_has_help_text_and_a_type() {
    let recorder = MetricsRecorder::new("streamline", &COMPONENTS).unwrap();
    let text = render_with(|| {
        recorder.record_tick(&full_tick(&[], &[]));
        recorder.record_transition(PressureLevel::Warning, PressureLevel::Normal);
    });
    let mut families: Vec<&str> = samples(&text)
        .iter()
        .map(|line| line.split(['{', ' ']).next().unwrap_or_default())
        .map(|name| {
            let histogram = "streamline_memory_monitor_tick_seconds";
            if name.starts_with(histogram) {
                histogram
            } else {
                name
            }
        })
        .collect();
    families.dedup();
    assert_eq!(families.len(), 24, "{families:?}");
    for family in families {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}\n{text}"
        );
    }
}

#[test]
fn the_prefix_is_configurable_and_checked() {
    let recorder = MetricsRecorder::new("my_app", &COMPONENTS).unwrap();
    let text = render_with(|| recorder.record_rejected_connection());
    assert!(
        has_sample(&text, "my_app_memory_rejected_connections_total", "1"),
        "{text}"
    );
    assert!(!text.contains("streamline"), "{text}");

    for bad in ["", "1abc", "my-app", "__reserved", "a b"] {
        let error = MetricsRecorder::new(bad, &COMPONENTS)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("invalid metrics prefix \"{bad}\"")),
            "{error}"
        );
    }
}
