//! The `rotate` function's settings, parsed once at cold start.

use std::time::Duration;

use lifeboat::core::error::ConfigError;
use lifeboat::core::settings::{parse_number, read, Env, DEFAULT_NAMESPACE, METRICS_NAMESPACE};
use lifeboat::plans::store::Location;
use lifeboat::postgres::db::TlsSettings;
use lifeboat::postgres::rotation::DEFAULT_EXCLUDED_CHARACTERS;

pub const PASSWORD_LENGTH: &str = "LIFEBOAT_PASSWORD_LENGTH";
pub const EXCLUDE_CHARACTERS: &str = "LIFEBOAT_PASSWORD_EXCLUDE_CHARACTERS";
pub const CONNECT_TIMEOUT: &str = "LIFEBOAT_CONNECT_TIMEOUT_SECONDS";
pub const STEP_BUDGET: &str = "LIFEBOAT_STEP_BUDGET_SECONDS";
/// This function's own ARN: the `RotationLambdaARN` a plan tick configures on the plan members' secrets. Set by
/// the template from the function's name (a function cannot reference its own ARN), never taken from an event.
pub const FUNCTION_ARN: &str = "LIFEBOAT_ROTATE_FUNCTION_ARN";

#[derive(Debug, Clone)]
pub struct RotateSettings {
    pub password_length: i64,
    pub exclude_characters: String,
    pub connect_timeout: Duration,
    /// The most one step may take; the step also stops two seconds before the invocation's deadline.
    pub step_budget: Duration,
    pub tls: TlsSettings,
    pub metrics_namespace: String,
    /// The plan document (`LIFEBOAT_PLAN_DOCUMENT`): plan ticks need it; rotation steps do not read it.
    pub plan: Option<Location>,
    /// See [`FUNCTION_ARN`]: plan ticks need it.
    pub function_arn: Option<String>,
}

impl RotateSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        // RDS for PostgreSQL accepts master passwords of up to 128 characters.
        let password_length = parse_number(env, PASSWORD_LENGTH, 32i64, 16..=128)?;
        // An empty value means "exclude nothing"; unset means the default set.
        let exclude_characters = env
            .get(EXCLUDE_CHARACTERS)
            .unwrap_or_else(|| DEFAULT_EXCLUDED_CHARACTERS.to_owned());
        if exclude_characters
            .chars()
            .any(|c| !c.is_ascii() || c.is_ascii_control())
        {
            return Err(ConfigError::new(
                EXCLUDE_CHARACTERS,
                &exclude_characters,
                "only printable ASCII characters can be excluded (generated passwords are printable ASCII)",
            ));
        }
        Ok(Self {
            password_length,
            exclude_characters,
            connect_timeout: Duration::from_secs(parse_number(env, CONNECT_TIMEOUT, 5u64, 1..=60)?),
            step_budget: Duration::from_secs(parse_number(env, STEP_BUDGET, 25u64, 5..=840)?),
            plan: Location::from_env(env)?,
            function_arn: function_arn(env)?,
            tls: TlsSettings::from_env(env)?,
            metrics_namespace: read(env, METRICS_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        })
    }
}

/// [`FUNCTION_ARN`], when set: a Lambda function's ARN (`arn:<partition>:lambda:<region>:<account>:function:<name>`).
fn function_arn(env: &impl Env) -> Result<Option<String>, ConfigError> {
    let Some(arn) = read(env, FUNCTION_ARN) else {
        return Ok(None);
    };
    let parts: Vec<&str> = arn.split(':').collect();
    let ok =
        parts.len() == 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function" && !parts[6].is_empty();
    if !ok {
        return Err(ConfigError::new(
            FUNCTION_ARN,
            &arn,
            "expected an unqualified Lambda function ARN, arn:<partition>:lambda:<region>:<account>:function:<name>",
        ));
    }
    Ok(Some(arn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> impl Env {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |n: &str| map.get(n).cloned()
    }

    #[test]
    fn defaults_are_safe() {
        // verify-full, the default, needs a CA bundle; any existing file passes the settings check.
        let bundle = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let s = RotateSettings::from_env(&env(&[("LIFEBOAT_DB_CA_BUNDLE", bundle)])).unwrap();
        assert_eq!(s.password_length, 32);
        assert_eq!(s.exclude_characters, DEFAULT_EXCLUDED_CHARACTERS);
        assert_eq!(s.tls.mode.as_str(), "verify-full");
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value, expected) in [
            (PASSWORD_LENGTH, "8", "between 16 and 128"),
            (EXCLUDE_CHARACTERS, "é", "printable ASCII"),
            (CONNECT_TIMEOUT, "0", "between 1 and 60"),
            (FUNCTION_ARN, "lifeboat-rotate", "unqualified Lambda function ARN"),
            (
                FUNCTION_ARN,
                "arn:aws:lambda:eu-west-1:123456789012:function:f:live",
                "unqualified",
            ),
            ("LIFEBOAT_DB_SSLMODE", "prefer", "prefer"),
        ] {
            let err = RotateSettings::from_env(&env(&[(var, value)])).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(expected), "{var}={value}: {err}");
        }
    }
}
