//! The overview's graphs: processed and failed jobs per minute or per hour,
//! drawn server-side as inline SVG (no script, no external asset; colours
//! come from the stylesheet's classes, so the strict CSP holds). Every text
//! in them is HTML-escaped.

use std::fmt::Write as _;

use super::esc;

/// One bar: a minute's or an hour's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bar {
    /// When it starts (shown in its tooltip).
    pub label: String,
    pub processed: u64,
    pub failed: u64,
}

/// Chart area (SVG user units).
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 90.0;
/// Room above (caption) and below (time axis) the chart, and left of it
/// (the scale).
const TOP: f64 = 20.0;
const BOTTOM: f64 = 16.0;
const LEFT: f64 = 36.0;

/// A stacked bar chart (processed below, failed above) with its caption
/// (`caption: processed N, failed M`, the sums), the largest bar's value on
/// the scale and `first` / `last` under the axis ends.
pub fn bars_svg(caption: &str, bars: &[Bar], first: &str, last: &str) -> String {
    let processed: u64 = bars.iter().map(|b| b.processed).fold(0, u64::saturating_add);
    let failed: u64 = bars.iter().map(|b| b.failed).fold(0, u64::saturating_add);
    let top = bars.iter().map(|b| b.processed.saturating_add(b.failed)).max().unwrap_or(0).max(1);
    let summary = format!("{caption}: processed {processed}, failed {failed}");
    let mut s = String::with_capacity(256 + bars.len() * 160);
    let _ = write!(
        s,
        "<svg class=graph role=img viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" aria-label=\"{label}\">\
         <title>{label}</title><text class=caption x=\"{LEFT}\" y=\"13\">{label}</text>\
         <text class=scale x=\"{sx}\" y=\"{ty}\" text-anchor=end>{top}</text>\
         <text class=scale x=\"{sx}\" y=\"{by}\" text-anchor=end>0</text>\
         <line class=axis x1=\"{LEFT}\" y1=\"{by}\" x2=\"{right}\" y2=\"{by}\"/>",
        w = LEFT + WIDTH + 4.0,
        h = TOP + HEIGHT + BOTTOM,
        label = esc(&summary),
        sx = LEFT - 4.0,
        ty = TOP + 8.0,
        by = TOP + HEIGHT,
        right = LEFT + WIDTH,
    );
    let n = bars.len().max(1) as f64;
    let step = WIDTH / n;
    let width = (step - 1.0).max(1.0);
    let scale = HEIGHT / top as f64;
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + step * i as f64;
        let hp = b.processed as f64 * scale;
        let hf = b.failed as f64 * scale;
        let _ = write!(s, "<g><title>{}: processed {}, failed {}</title>", esc(&b.label), b.processed, b.failed);
        // An empty slot still gets a hover target.
        let _ = write!(s, "<rect class=slot x=\"{x:.1}\" y=\"{TOP}\" width=\"{width:.1}\" height=\"{HEIGHT}\"/>");
        if b.processed > 0 {
            let _ = write!(
                s,
                "<rect class=ok x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{hp:.1}\"/>",
                TOP + HEIGHT - hp
            );
        }
        if b.failed > 0 {
            let _ = write!(
                s,
                "<rect class=fail x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{hf:.1}\"/>",
                TOP + HEIGHT - hp - hf
            );
        }
        s.push_str("</g>");
    }
    let ay = TOP + HEIGHT + 12.0;
    let _ = write!(
        s,
        "<text class=scale x=\"{LEFT}\" y=\"{ay}\">{}</text><text class=scale x=\"{}\" y=\"{ay}\" \
         text-anchor=end>{}</text></svg>",
        esc(first),
        LEFT + WIDTH,
        esc(last)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_sums_its_bars_and_escapes_its_texts() {
        let bars = vec![
            Bar { label: "10:00".into(), processed: 3, failed: 1 },
            Bar { label: "<b>".into(), processed: 0, failed: 0 },
            Bar { label: "10:02".into(), processed: 6, failed: 0 },
        ];
        let svg = bars_svg("queue \"><img onerror=x>", &bars, "-3m", "now");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("processed 9, failed 1"), "{svg}");
        assert!(svg.contains("&quot;&gt;&lt;img onerror=x&gt;") && !svg.contains("<img"), "{svg}");
        assert!(svg.contains("&lt;b&gt;: processed 0") && !svg.contains("<b>"), "{svg}");
        // The tallest bar (6) fills the chart: its top on the chart's.
        assert!(svg.contains(">6</text>"), "{svg}");
        assert!(svg.contains("<rect class=ok x=\"356.0\" y=\"20.0\" width=\"159.0\" height=\"90.0\"/>"), "{svg}");
        assert_eq!(svg.matches("class=ok").count(), 2);
        assert_eq!(svg.matches("class=fail").count(), 1);
    }

    #[test]
    fn an_empty_graph_still_draws() {
        let svg = bars_svg("last hour", &[], "", "");
        assert!(svg.contains("processed 0, failed 0"), "{svg}");
    }
}
