//! Diagnostics on stderr, through `tracing`: the phase trace of the hook and of `check`
//! (`ROOTSEAL_TRACE=1`: one line per phase with its time and memory) and the monitor's log
//! lines. The operator-facing lines with a contract (the hook's one reason line, the CLI's
//! error line, the monitor's event echo) are not diagnostics and are written directly.
//!
//! Without `ROOTSEAL_TRACE` the hook installs no subscriber at all: a disabled `tracing`
//! call site costs one relaxed atomic load, so the start path pays nothing for it.

use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// The variable that turns the phase trace on (any value).
pub const ENV_VAR: &str = "ROOTSEAL_TRACE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The hook, `check` and the other commands: trace lines only, when asked for.
    Cli,
    /// The monitor: its log lines always (the journal keeps them), the trace when asked for.
    Monitor,
}

/// Installs the stderr subscriber for `program`, once per process (later calls do nothing).
pub fn init(program: Program) {
    let traced = std::env::var_os(ENV_VAR).is_some();
    let (prefix, level) = match program {
        Program::Monitor => ("rootseal monitor: ", if traced { LevelFilter::DEBUG } else { LevelFilter::INFO }),
        Program::Cli if traced => ("rootseal: trace: ", LevelFilter::DEBUG),
        Program::Cli => return,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .event_format(Line { prefix })
        .try_init();
}

/// `PREFIX message key=value ...`: the lines rootseal printed before it used `tracing`, so the
/// journal and whatever parses the trace see the same text.
struct Line {
    prefix: &'static str,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        w.write_str(self.prefix)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// `ROOTSEAL_TRACE`: the resident and peak memory (KiB) of this process, for the phase lines.
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    (kib("VmRSS:").unwrap_or(0), kib("VmHWM:").unwrap_or(0))
}
