//! Rendering for the operator subcommands (`tq stats`, `tq failed`, ...):
//! aligned text tables, times as RFC 3339 UTC with a relative part
//! (`2026-11-22T10:00:00Z (in 5m)`), and the progress report of long
//! sweeps (`tq retry`, `tq remove`) on stderr: a redrawn bar on a terminal,
//! plain periodic lines otherwise.

use std::io::{IsTerminal, Write};

use indicatif::TermLike;
use std::time::{Duration, Instant};

use crate::duration::show_short_ms;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A text table (comfy-table, without borders): a header row and rows of
/// cells, columns separated by two spaces, the last column not padded.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns as (header, alignment).
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| (*h).to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The table as lines, each ending in `\n`; `indent` spaces before each.
    pub fn render_indented(&self, indent: usize) -> String {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::NOTHING);
        t.set_header(self.headers.clone());
        for row in &self.rows {
            t.add_row(row.clone());
        }
        // No borders: columns two spaces apart, the last one not padded.
        let last = self.headers.len().saturating_sub(1);
        for (i, column) in t.column_iter_mut().enumerate() {
            column.set_padding((0, if i < last { 2 } else { 0 }));
            column.set_cell_alignment(match self.align.get(i) {
                Some(Align::Right) => comfy_table::CellAlignment::Right,
                _ => comfy_table::CellAlignment::Left,
            });
        }
        let margin = " ".repeat(indent);
        let mut out = String::new();
        for line in t.lines() {
            out.push_str(&margin);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn render(&self) -> String {
        self.render_indented(0)
    }
}

/// A cell of arbitrary text on one line: control characters (newlines,
/// tabs, escapes) become spaces and runs of them one space; longer than `max`
/// characters is cut with `…`.
pub fn cell(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in text.chars() {
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    if out.chars().count() > max {
        let keep: String = out.chars().take(max.saturating_sub(1)).collect();
        format!("{keep}…")
    } else {
        out
    }
}

/// `new Date(ms).toISOString()` without a zero fraction:
/// `2026-11-22T10:00:00Z`, `2026-11-22T10:00:00.250Z`.
pub fn rfc3339(ms: u64) -> String {
    let iso = tq_core::time::iso8601(ms);
    match iso.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => iso,
    }
}

/// `in 5m`, `5m ago` or `now` (under a second apart), for `at` seen at `now`.
pub fn relative(at: u64, now: u64) -> String {
    if at.abs_diff(now) < 1000 {
        "now".to_string()
    } else if at > now {
        format!("in {}", show_short_ms(at - now))
    } else {
        format!("{} ago", show_short_ms(now - at))
    }
}

/// `2026-11-22T10:00:00Z (in 5m)`.
pub fn when(at: u64, now: u64) -> String {
    format!("{} ({})", rfc3339(at), relative(at, now))
}

/// How a sweep reports its progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A bar redrawn in place (indicatif), for a terminal.
    Bar,
    /// A plain line every few seconds, for logs.
    Plain,
    /// Nothing.
    Off,
}

/// How often plain lines come.
const PLAIN_EVERY: Duration = Duration::from_secs(2);
const BAR_WIDTH: usize = 30;

/// Progress of a sweep over `total` items (records looked at), with a count
/// of the items it acted on (`verb`: "retried", "removed"). The bar is
/// indicatif's, redrawn at most 10 times a second on stderr.
pub struct Progress {
    label: String,
    verb: &'static str,
    total: u64,
    style: ProgressStyle,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last: Option<Instant>,
    done: u64,
    affected: u64,
}

impl Progress {
    pub fn new(label: &str, verb: &'static str, total: u64, style: ProgressStyle) -> Progress {
        let bar = (style == ProgressStyle::Bar).then(|| new_bar(label, total));
        Progress {
            label: label.to_string(),
            verb,
            total,
            style,
            bar,
            started: Instant::now(),
            last: None,
            done: 0,
            affected: 0,
        }
    }

    /// Records the position reached; draws when it is time to.
    pub fn update(&mut self, done: u64, affected: u64) {
        self.done = done;
        self.affected = affected;
        self.total = self.total.max(done);
        if let Some(bar) = &self.bar {
            bar.set_length(self.total);
            bar.set_position(done);
            bar.set_message(format!("{affected} {}", self.verb));
            return;
        }
        let now = Instant::now();
        if self.style == ProgressStyle::Plain && now.duration_since(self.last.unwrap_or(self.started)) >= PLAIN_EVERY {
            self.last = Some(now);
            self.plain_line();
        }
    }

    /// The final state: the bar is drawn complete and its line ended; a plain
    /// report that printed anything prints a last line.
    pub fn finish(&mut self) {
        self.total = self.total.max(self.done);
        if let Some(bar) = &self.bar {
            bar.set_length(self.total);
            bar.set_position(self.done);
            bar.finish_with_message(format!("{} {}", self.affected, self.verb));
            if !bar.is_hidden() && !std::io::stderr().is_terminal() {
                let _ = Stderr.write_line(""); // a terminal keeps the cursor past the bar
            }
        } else if self.style == ProgressStyle::Plain && self.last.is_some() {
            self.plain_line();
        }
    }

    fn plain_line(&self) {
        let line = format!(
            "{}: {}  {} {}\n",
            self.label,
            status_line(self.done, self.total, self.started.elapsed()),
            self.affected,
            self.verb
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}

/// `retry [#########---------------------] 12000/25000   48%  5400/s  ETA 2s  3 retried`.
fn new_bar(label: &str, total: u64) -> indicatif::ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr_with_hz(10)
    } else {
        indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 10)
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), target);
    let template = format!("{{prefix}} [{{bar:{BAR_WIDTH}}}] {{status}}  {{msg}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        let status = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&status_line(s.pos(), s.len().unwrap_or(0), s.elapsed()));
        };
        bar.set_style(style.progress_chars("#-").with_key("status", status));
    }
    bar.set_prefix(label.to_string());
    bar
}

/// stderr as indicatif's terminal when it is not one (`--progress bar` asks
/// for the bar in a log too): plain ANSI sequences, lines of 120 columns.
#[derive(Debug)]
struct Stderr;

impl Stderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl indicatif::TermLike for Stderr {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}A"))
        }
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}B"))
        }
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}C"))
        }
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}D"))
        }
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().lock().flush()
    }
}

/// `12000/25000  48%  5400/s  ETA 2s` (rate and ETA once measurable).
pub fn status_line(done: u64, total: u64, elapsed: Duration) -> String {
    let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let mut s = format!("{done}/{total}  {pct:>3}%");
    let secs = elapsed.as_secs_f64();
    if secs >= 0.001 && done > 0 {
        let rate = done as f64 / secs;
        s.push_str(&format!("  {}/s", rate.round() as u64));
        if done < total {
            let eta_secs = ((total - done) as f64 / rate).ceil().max(1.0) as u64;
            s.push_str(&format!("  ETA {}", show_short_ms(eta_secs.saturating_mul(1000))));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[("QUEUE", Align::Left), ("LENGTH", Align::Right), ("NOTE", Align::Left)]);
        t.row(vec!["math".into(), "10".into(), "x".into()]);
        t.row(vec!["a-long-queue".into(), "2".into(), String::new()]);
        t.row(vec!["é".into(), "12345678".into()]);
        assert_eq!(
            t.render(),
            "QUEUE           LENGTH  NOTE\n\
             math                10  x\n\
             a-long-queue         2\n\
             é             12345678\n"
        );
        assert_eq!(t.len(), 3);
        let t = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        assert!(t.is_empty());
        assert_eq!(t.render_indented(2), "  A  B\n");
    }

    #[test]
    fn cells_are_one_line_and_bounded() {
        assert_eq!(cell("boom\nline 2\t\tend ", 100), "boom line 2 end");
        assert_eq!(cell("  lead", 100), "lead");
        assert_eq!(cell("abcdefghij", 5), "abcd…");
        assert_eq!(cell("abcde", 5), "abcde");
        assert_eq!(cell("ééééééé", 4), "ééé…");
        assert_eq!(cell("\x1b[31mred", 100), "[31mred");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_329_010_123), "2026-11-22T06:30:10.123Z");
        assert_eq!(rfc3339(1_795_329_010_000), "2026-11-22T06:30:10Z");
        assert_eq!(when(1_795_329_310_000, 1_795_329_010_000), "2026-11-22T06:35:10Z (in 5m)");
        assert_eq!(when(1_795_329_010_000, 1_795_329_070_500), "2026-11-22T06:30:10Z (1m ago)");
        assert_eq!(relative(5_000, 5_999), "now");
        assert_eq!(relative(5_999, 5_000), "now");
        assert_eq!(relative(10_000, 5_000), "in 5s");
    }

    #[test]
    fn progress_lines() {
        assert_eq!(status_line(0, 100, Duration::ZERO), "0/100    0%");
        assert_eq!(status_line(50, 100, Duration::from_secs(1)), "50/100   50%  50/s  ETA 1s");
        assert_eq!(status_line(12_000, 25_000, Duration::from_secs(2)), "12000/25000   48%  6000/s  ETA 3s");
        assert_eq!(status_line(100, 100, Duration::from_secs(4)), "100/100  100%  25/s");
        assert_eq!(status_line(0, 0, Duration::from_secs(1)), "0/0  100%");
    }

    #[test]
    fn progress_off_draws_nothing_and_tracks_the_total() {
        let mut p = Progress::new("retry", "retried", 10, ProgressStyle::Off);
        p.update(15, 3);
        p.finish();
        assert_eq!((p.done, p.total, p.affected), (15, 15, 3));
        assert!(p.bar.is_none());
    }

    #[test]
    fn the_bar_tracks_the_sweep() {
        let mut p = Progress::new("retry", "retried", 10, ProgressStyle::Bar);
        if let Some(bar) = &p.bar {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden()); // keep the test's stderr clean
        }
        p.update(4, 1);
        p.update(15, 3);
        p.finish();
        let bar = p.bar.as_ref().expect("a bar");
        assert_eq!((bar.position(), bar.length(), bar.is_finished()), (15, Some(15), true));
        assert_eq!(bar.message(), "3 retried");
    }
}
