//! The common core: what every domain stands on, and nothing that belongs to one of them.
//!
//! Owns the configuration machinery and the variables several domains read ([`settings`]), the errors and their
//! Lambda `errorType` ([`error`]), the metric vocabulary and its publishing ([`metrics`]), logging
//! ([`telemetry`]), the AWS SDK configuration ([`aws`]) and its clients, each built on first use ([`client`]), the
//! tag keys ([`tags`]), the version an artefact records and an invocation's deadline.
//!
//! Depends on no domain: nothing here imports `bucket`, `postgres`, `rds`, `caches`, `monitoring` or
//! `evidence`. It must never hold a rule of one of them (a threshold, a name, a retention); a variable that only
//! one domain reads is declared in that domain's own settings.

pub mod aws;
pub mod client;
pub mod error;
pub mod metrics;
pub mod settings;
pub mod tags;
pub mod telemetry;

/// The monotonic instant of an invocation's deadline, from the milliseconds since the epoch that the Lambda runtime
/// gives (`Context::deadline`). A deadline already past when the invocation starts means the runtime set none
/// (local emulators), and is treated as no deadline.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<std::time::Instant> {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    (deadline_ms > now_ms).then(|| std::time::Instant::now() + std::time::Duration::from_millis(deadline_ms - now_ms))
}

/// The version recorded in tags, manifests and reports, so an artefact says which Lifeboat made it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    #[test]
    fn deadlines_in_the_past_mean_none_and_future_ones_count_down() {
        assert!(super::deadline_from_epoch_ms(0).is_none());
        let in_a_minute = chrono::Utc::now().timestamp_millis() as u64 + 60_000;
        let left = super::deadline_from_epoch_ms(in_a_minute)
            .unwrap()
            .saturating_duration_since(std::time::Instant::now());
        assert!(left > std::time::Duration::from_secs(55) && left <= std::time::Duration::from_secs(60));
    }
}
