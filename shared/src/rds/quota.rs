//! The manual-snapshot quota rule: how full a region's quota is, and when that deserves a warning.
//!
//! Owns the arithmetic (used percent, rounded to one decimal) and the warning threshold, so every function that
//! reports the quota (`snapshot` after each run, `monitor` on its sweep) says the same thing about the same count.
//! Pure: it never lists snapshots, logs or publishes metrics; callers gather the count and act on the report.

use serde::Serialize;

/// One region's manual snapshots against the account's quota, as printed in a run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaReport {
    pub region: String,
    pub manual_snapshots: usize,
    pub quota: u32,
    /// `manual_snapshots` as a percentage of `quota`, rounded to one decimal.
    pub used_percent: f64,
    /// `used_percent` (as rounded) is at or above the warning threshold.
    pub warning: bool,
}

/// Percentage of `quota` that `count` manual snapshots use, rounded to one decimal place.
/// A quota of 0 (which settings refuse) counts as full.
pub fn used_percent(count: usize, quota: u32) -> f64 {
    if quota == 0 {
        return 100.0;
    }
    (count as f64 * 100.0 / f64::from(quota) * 10.0).round() / 10.0
}

/// The quota figures for one region and whether they cross `warn_percent` (compared after rounding).
pub fn quota_report(region: &str, count: usize, quota: u32, warn_percent: u32) -> QuotaReport {
    let used_percent = used_percent(count, quota);
    QuotaReport {
        region: region.to_owned(),
        manual_snapshots: count,
        quota,
        used_percent,
        warning: used_percent >= f64::from(warn_percent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn used_percent_is_rounded_to_one_decimal() {
        assert_eq!(used_percent(4, 100), 4.0);
        assert_eq!(used_percent(1, 3), 33.3);
        assert_eq!(used_percent(2, 3), 66.7);
        assert_eq!(used_percent(150, 100), 150.0);
        assert_eq!(used_percent(0, 100), 0.0);
    }

    #[test]
    fn warns_at_the_threshold_not_below() {
        let at = quota_report("us-east-1", 80, 100, 80);
        assert_eq!(
            at,
            QuotaReport {
                region: "us-east-1".into(),
                manual_snapshots: 80,
                quota: 100,
                used_percent: 80.0,
                warning: true
            }
        );
        assert!(!quota_report("us-east-1", 79, 100, 80).warning);
        assert!(
            quota_report("us-east-1", 101, 100, 80).warning,
            "over quota still warns"
        );
    }

    #[test]
    fn the_threshold_is_compared_after_rounding() {
        // 3999 of 5000 is 79.98%, shown as 80.0%: the report must not show 80.0% without the warning.
        let r = quota_report("eu-west-1", 3999, 5000, 80);
        assert_eq!(r.used_percent, 80.0);
        assert!(r.warning);
    }

    #[test]
    fn zero_quota_counts_as_full() {
        assert!(quota_report("r", 0, 0, 80).warning);
    }

    proptest! {
        #[test]
        fn warning_is_monotonic_in_the_count(count in 0usize..10_000, quota in 1u32..10_000, warn in 1u32..=100) {
            let r = quota_report("r", count, quota, warn);
            if r.warning {
                prop_assert!(quota_report("r", count + 1, quota, warn).warning);
            }
            prop_assert!(r.used_percent >= 0.0);
        }
    }
}
