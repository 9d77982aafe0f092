//! `INFO [section ...]` and the hook for extra sections.

use std::fmt::Write;

use super::server::REDIS_VERSION;
use super::Context;
use crate::resp::Reply;

/// One `INFO` section: `# <name>` then `field:value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSection {
    /// The heading, e.g. `"Memory"`; matched case-insensitively against the
    /// sections a client asks for.
    pub name: String,
    /// Field names and values, in order. Neither may contain `\r` or `\n`,
    /// and field names no `:`.
    pub fields: Vec<(String, String)>,
}

/// A source of extra `INFO` sections, e.g. memory figures from a monitor.
///
/// Called on every `INFO`, from whichever thread runs the command; keep it
/// quick (read atomics or a snapshot, do no I/O).
pub trait InfoProvider: Send + Sync {
    /// The sections to add, after the built-in ones.
    fn sections(&self) -> Vec<InfoSection>;
}

/// `INFO [section ...]`: the requested sections (all of them for none,
/// `default`, `all` or `everything`) as a bulk string; unknown sections are
/// left out, so asking only for those gives an empty bulk string.
pub(crate) fn info(args: &[Vec<u8>], ctx: &Context) -> Reply {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|arg| String::from_utf8_lossy(arg).to_ascii_lowercase())
        .collect();
    let everything = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "default" | "all" | "everything"));

    let mut sections = vec![server_section(ctx), streams_section(ctx)];
    for provider in &ctx.info_providers {
        sections.extend(provider.sections());
    }

    let mut text = String::new();
    for section in sections {
        if !everything && !wanted.contains(&section.name.to_ascii_lowercase()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        // Writing into a String cannot fail.
        let _ = write!(text, "# {}\r\n", section.name);
        for (field, value) in &section.fields {
            let _ = write!(text, "{field}:{value}\r\n");
        }
    }
    Reply::bulk(text)
}

fn server_section(ctx: &Context) -> InfoSection {
    let fields = [
        ("redis_version", REDIS_VERSION.to_owned()),
        ("streamlet_version", env!("CARGO_PKG_VERSION").to_owned()),
        ("redis_mode", "standalone".to_owned()),
        ("os", std::env::consts::OS.to_owned()),
        ("arch_bits", (usize::BITS).to_string()),
        ("process_id", std::process::id().to_string()),
        ("tcp_port", ctx.tcp_port.to_string()),
        (
            "uptime_in_seconds",
            ctx.started.elapsed().as_secs().to_string(),
        ),
    ];
    section("Server", fields)
}

fn streams_section(ctx: &Context) -> InfoSection {
    let store = ctx.store();
    let blocks = store.block_cache().stats();
    let indexes = store.index_cache().stats();
    let fields = [
        ("streams", store.stream_count().to_string()),
        ("block_cache_bytes", blocks.size_bytes.to_string()),
        (
            "block_cache_capacity_bytes",
            blocks.capacity_bytes.to_string(),
        ),
        ("block_cache_entries", blocks.entries.to_string()),
        ("block_cache_hits", blocks.hits.to_string()),
        ("block_cache_misses", blocks.misses.to_string()),
        ("block_cache_evictions", blocks.evictions.to_string()),
        ("index_cache_bytes", indexes.size_bytes.to_string()),
        (
            "index_cache_capacity_bytes",
            indexes.capacity_bytes.to_string(),
        ),
        ("index_cache_entries", indexes.entries.to_string()),
    ];
    section("Streams", fields)
}

fn section<const N: usize>(name: &str, fields: [(&str, String); N]) -> InfoSection {
    InfoSection {
        name: name.to_owned(),
        fields: fields
            .into_iter()
            .map(|(field, value)| (field.to_owned(), value))
            .collect(),
    }
}
