//! The `notify` function's settings, parsed once at cold start.

use lifeboat::core::error::ConfigError;
use lifeboat::core::settings::{self, parse_number, read, Env, DEFAULT_NAMESPACE, METRICS_NAMESPACE};
use lifeboat::monitoring::monitor::AlarmScope;

pub const TOPIC: &str = "LIFEBOAT_NOTIFY_TOPIC_ARN";
pub const WEBHOOK_SECRET: &str = "LIFEBOAT_WEBHOOK_SECRET";
pub const DEDUPE_MINUTES: &str = "LIFEBOAT_NOTIFY_DEDUPE_MINUTES";
pub const WEBHOOK_ATTEMPTS: &str = "LIFEBOAT_WEBHOOK_ATTEMPTS";

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub topic_arn: Option<String>,
    /// A secret whose value is the webhook URL (or `{"url": ...}`).
    pub webhook_secret: Option<String>,
    /// Where the last message per alarm is remembered (dedupe) and the latest exports are looked up.
    pub bucket: String,
    pub dedupe_minutes: u32,
    pub webhook_attempts: u32,
    pub metrics_namespace: String,
    /// This stack's alarms (`LIFEBOAT_STACK_NAME`): only their subjects are named in a message.
    pub alarm_scope: AlarmScope,
}

impl NotifySettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let topic_arn = read(env, TOPIC);
        let webhook_secret = read(env, WEBHOOK_SECRET);
        if topic_arn.is_none() && webhook_secret.is_none() {
            return Err(ConfigError::new(
                TOPIC,
                "",
                format!("set {TOPIC} and/or {WEBHOOK_SECRET}: a notification needs somewhere to go"),
            ));
        }
        Ok(Self {
            topic_arn,
            webhook_secret,
            bucket: settings::bucket(env)?,
            dedupe_minutes: parse_number(env, DEDUPE_MINUTES, 60u32, 0..=10_080)?,
            webhook_attempts: parse_number(env, WEBHOOK_ATTEMPTS, 3u32, 1..=10)?,
            metrics_namespace: read(env, METRICS_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            alarm_scope: lifeboat::monitoring::settings::alarm_scope(env)?,
        })
    }
}
