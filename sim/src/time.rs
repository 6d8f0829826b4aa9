//! Timestamps as kube-apiserver writes them (RFC 3339, second precision, UTC) and ages as
//! kubectl prints them.

/// Now, as `2026-11-27T12:00:00Z`.
pub fn now_rfc3339() -> String {
    format_ts(jiff::Timestamp::now())
}

/// A timestamp `secs` seconds from now.
pub fn rfc3339_in(secs: i64) -> String {
    let now = jiff::Timestamp::now();
    format_ts(
        now.checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(now),
    )
}

fn format_ts(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Seconds elapsed since an RFC 3339 timestamp, if it parses.
pub fn seconds_since(ts: &str) -> Option<i64> {
    let then: jiff::Timestamp = ts.parse().ok()?;
    Some(jiff::Timestamp::now().as_second() - then.as_second())
}

/// An age like kubectl's `AGE` column: `45s`, `3m12s`, `2h5m`, `4d`.
pub fn human_age(ts: &str) -> String {
    let Some(secs) = seconds_since(ts) else {
        return "<unknown>".to_owned();
    };
    human_duration(secs.max(0))
}

/// Go's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let mm = m % 60;
        if mm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{mm}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        let hh = h % 24;
        if hh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{hh}h")
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        let dd = d % 365;
        if dd == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{dd}d")
        }
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(4 * 3600 + 60 * 5), "4h5m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400), "3d");
        assert_eq!(human_duration(30 * 86_400), "30d");
    }
}
