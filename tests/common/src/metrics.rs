//! Reading Prometheus text: one series' value.

/// The value of `series` (its name with labels, exactly as printed, e.g.
/// `authrelay_jobs_replayed_total{phase="post_call"}`) in `/metrics` text;
/// 0 when it has not been created yet.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}
