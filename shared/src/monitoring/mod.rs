//! Monitoring and notifications: what the fleet's observed facts mean, which alarms each database and cache gets,
//! what the janitor deletes, and which alarm transitions are worth a message.
//!
//! Owns the databases' monitoring rules ([`monitor`]), the caches' ([`caches`]: here and not in `caches`, since
//! they extend the databases' alarm sets and `BackupMissing` rule, and nothing in `caches` needs them), the
//! thresholds read from the environment ([`settings`]) or, in plan mode, each resource's from its plan
//! ([`plan`]), and the notification rules ([`notify`]).
//!
//! May use: `plans`, `caches`, `rds`, `bucket`, `core`. Must never: call AWS (the `monitor` and `notify` functions gather
//! and act), write a message's words (`notify`'s renderer does), or be imported by a domain below it.

pub mod caches;
pub mod monitor;
pub mod notify;
pub mod plan;
pub mod settings;
