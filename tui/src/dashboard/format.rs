//! Short human formats for the dashboard: "12m ago", "in 4m", "2.1s", "3d 04h", "12.3 MiB",
//! "+12 ~3 −1". Pure functions of their inputs (the caller passes "now").

use chrono::{DateTime, Utc};

/// "5s", "3m", "2h", "4d": the largest unit only.
fn coarse(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// "12m ago" for a past instant, "in 12m" for a future one.
pub fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    if seconds >= 0 {
        format!("{} ago", coarse(seconds))
    } else {
        format!("in {}", coarse(-seconds))
    }
}

/// "in 4m" for a future instant, "due" once it has passed.
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    if seconds <= 0 {
        "due".to_owned()
    } else {
        format!("in {}", coarse(seconds))
    }
}

/// A run's duration: "850ms", "2.1s", "1m05s", "1h02m".
pub fn duration_ms(ms: u64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{}.{}s", ms / 1000, (ms % 1000) / 100),
        ms if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
        ms => format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// An uptime or age with two units: "40s", "12m 03s", "2h 05m", "3d 04h".
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// "512 B", "12.3 KiB", "4.0 MiB", "1.2 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Inserted, updated and deleted rows: "+12 ~3 −1".
pub fn changes(inserted: u64, updated: u64, deleted: u64) -> String {
    format!("+{inserted} ~{updated} −{deleted}")
}

/// A percentage of `done` out of `total`, 0 when there is nothing to do.
pub fn percent(done: u64, total: u64) -> u64 {
    done.min(total)
        .saturating_mul(100)
        .checked_div(total)
        .unwrap_or(0)
}

/// Cuts `text` to at most `max` characters, ending in "…" when it was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn ago_and_until() {
        assert_eq!(ago(t(100), t(95)), "5s ago");
        assert_eq!(ago(t(4000), t(0)), "1h ago");
        assert_eq!(ago(t(0), t(180)), "in 3m");
        assert_eq!(until(t(0), t(240)), "in 4m");
        assert_eq!(until(t(10), t(0)), "due");
        assert_eq!(ago(t(200_000), t(0)), "2d ago");
    }

    #[test]
    fn durations_and_spans() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(2_150), "2.1s");
        assert_eq!(duration_ms(65_000), "1m05s");
        assert_eq!(duration_ms(3_720_000), "1h02m");
        assert_eq!(span(40), "40s");
        assert_eq!(span(723), "12m 03s");
        assert_eq!(span(7_500), "2h 05m");
        assert_eq!(span(3 * 86_400 + 4 * 3600), "3d 04h");
        assert_eq!(span(-5), "0s");
    }

    #[test]
    fn sizes_counts_and_text() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(4 * 1024 * 1024), "4.0 MiB");
        assert_eq!(changes(12, 3, 1), "+12 ~3 −1");
        assert_eq!(percent(45, 100), 45);
        assert_eq!(percent(1, 0), 0);
        assert_eq!(percent(7, 5), 100);
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
