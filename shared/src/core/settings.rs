//! Typed settings, parsed once at cold start from `LIFEBOAT_*` variables: the machinery every domain's settings
//! use ([`Env`], [`read`], [`parse_number`], [`parse_list`]) and the variables read by several domains (the
//! bucket, the metrics namespace, `pg_restore`, whether serverless caches are read).
//!
//! Every variable has a named constant and a documented default (docs/book/src/reference/configuration.md lists the
//! same names). An invalid value is a [`ConfigError`] naming the variable and the value it got, so a bad
//! deployment fails at start-up with a message an operator can act on, not halfway through a run.
//!
//! A variable that needs a domain's type to parse (the database selector, the retention policy, monitor's
//! thresholds) is declared with its domain: `rds::settings`, `monitoring::settings`. This file imports no domain.

use crate::core::error::ConfigError;

pub const METRICS_NAMESPACE: &str = "LIFEBOAT_METRICS_NAMESPACE";
/// The export bucket: exports, manifests, restore-test reports and notification state (its layout is `bucket::layout`).
pub const BUCKET: &str = "LIFEBOAT_BUCKET";
/// The `pg_restore` program that proves and restores archives (export and restore).
pub const PG_RESTORE: &str = "LIFEBOAT_PG_RESTORE";

pub const DEFAULT_NAMESPACE: &str = "Lifeboat";
/// A source of variables: the process environment in production, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Reads a variable, treating an empty or blank value as unset (a SAM parameter left empty arrives as "").
pub fn read(env: &impl Env, name: &str) -> Option<String> {
    env.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

pub fn parse_number<T>(
    env: &impl Env,
    name: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = read(env, name) else {
        return Ok(default);
    };
    let value: T = raw
        .parse()
        .map_err(|_| ConfigError::new(name, &raw, "expected a whole number"))?;
    if !range.contains(&value) {
        return Err(ConfigError::new(
            name,
            &raw,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

pub fn parse_list(env: &impl Env, name: &str) -> Vec<String> {
    read(env, name)
        .map(|raw| {
            raw.split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The export bucket, which every function that reads or writes it requires.
pub fn bucket(env: &impl Env) -> Result<String, ConfigError> {
    read(env, BUCKET).ok_or_else(|| ConfigError::new(BUCKET, "", "required: the bucket holding exports and reports"))
}

/// The `pg_restore` program: the one on the `PATH` unless configured.
pub fn pg_restore(env: &impl Env) -> String {
    read(env, PG_RESTORE).unwrap_or_else(|| "pg_restore".to_owned())
}

/// Whether ElastiCache Serverless caches are selected, snapshotted and watched: `true` or `false`. Unset is
/// `false`, so that a deployment in a region without ElastiCache Serverless (or an emulator without it) never
/// calls it; the template sets it from its `ServerlessCaches` parameter (default `true`).
pub const SERVERLESS_CACHES: &str = "LIFEBOAT_SERVERLESS_CACHES";

/// [`SERVERLESS_CACHES`], parsed.
pub fn serverless_caches(env: &impl Env) -> Result<bool, ConfigError> {
    match read(env, SERVERLESS_CACHES).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConfigError::new(SERVERLESS_CACHES, &v, "expected `true` or `false`")),
    }
}
