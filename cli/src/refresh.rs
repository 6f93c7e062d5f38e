//! `lifeboat refresh`: a plan's staging refresh run from a terminal, with no time limit, by `lifeboat::refresh`.
//! It finds what the restore function's `refresh` finds, the same way: the rule in the plan document in force,
//! the staging server as RDS describes it, logged in to with that server's OWN Lifeboat secret (never the
//! source's), the host checked against its endpoints; the age identity and the masking key from the options or
//! the stack's variables. Ctrl-C turns the interrupt flag on: the refresh drops what it created, exit 130.
//! Translates only; never connects to the source database.

use std::sync::Arc;

use chrono::Utc;
use lifeboat::core::error::{ConfigError, Error};
use lifeboat::core::settings::{read, ProcessEnv};
use lifeboat::mask::rewrite::MaskKey;
use lifeboat::plans::due::refresh_rule;
use lifeboat::plans::store;
use lifeboat::postgres::archive::{self, plan, Counters, Which};
use lifeboat::postgres::db::{self, TlsSettings};
use lifeboat::postgres::export::check_host;
use lifeboat::refresh;
use serde_json::json;

use crate::args;
use crate::run::{context, identities, on_ctrl_c, secret, CliError, Done};

/// The staging server's database a refresh's administrator connects to in order to create the new one.
const MAINTENANCE_DB: &str = "postgres";
/// The variable the stack's functions read the masking key's secret from.
const MASKING_KEY_SECRET: &str = "LIFEBOAT_MASKING_KEY_SECRET";

/// `lifeboat refresh`.
pub async fn refresh(r: &args::Refresh, profile: Option<&str>) -> Result<Done, CliError> {
    let interrupt = on_ctrl_c();
    let key_secret = r
        .masking_key_secret
        .clone()
        .or_else(|| read(&ProcessEnv, MASKING_KEY_SECRET))
        .ok_or_else(|| {
            ConfigError::new(
                MASKING_KEY_SECRET,
                "",
                "pass --masking-key-secret or set LIFEBOAT_MASKING_KEY_SECRET",
            )
        })?;
    let tls = TlsSettings::from_env(&ProcessEnv)?;
    let location = crate::plan::location(&args::PlanSource {
        document: r.document.clone(),
        bucket: None,
    })?;
    let ctx = context(profile, r.common.bucket.as_deref(), r.common.pg_restore.as_deref()).await?;
    let loaded = store::load(&ctx.s3, &location).await.map_err(|e| match e {
        Error::Plan(m) => CliError::NotFound(m),
        other => CliError::Gather(other),
    })?;
    let rule = refresh_rule(&loaded.document, &r.plan, &r.refresh).map_err(CliError::NotFound)?;
    let server = admin_target(&ctx, &rule.into.instance, tls).await?;
    let which = r.export.clone().map_or(Which::Latest, Which::Manifest);
    let (key, manifest) = archive::find_export(&ctx.s3, &ctx.bucket, &rule.from, Some(&rule.export), &which).await?;
    if manifest.profile != rule.export {
        return Err(CliError::Refused(format!(
            "export {key} is of profile `{}`, not the refresh's `{}`",
            manifest.profile, rule.export
        )));
    }
    let ids = identities(&ctx, &r.identity).await?;
    let mask_key =
        MaskKey::from_secret_text(&key_secret, &secret(&ctx, &key_secret).await?).map_err(CliError::Refused)?;
    if *interrupt.borrow() {
        return Err(CliError::InterruptedEarly);
    }
    eprintln!(
        "refreshing {} (plan {}) from {key} into {} on {}",
        rule.name, r.plan, rule.into.database, rule.into.instance
    );
    let counters = Arc::new(Counters::default());
    let reporter = crate::progress::start(
        counters.clone(),
        crate::run::totals(&manifest, manifest.tables.len() as u64),
    );
    let pinned = Which::Manifest(key.clone());
    let now = Utc::now();
    let result = refresh::refresh(refresh::Request {
        s3: &ctx.s3,
        bucket: &ctx.bucket,
        rule,
        which: &pinned,
        identities: &ids,
        key: &mask_key,
        pg_restore: &ctx.pg_restore,
        server: &server,
        counters: &counters,
        interrupt: Some(&interrupt),
        stop_at: None,
        now,
    })
    .await;
    drop(reporter);
    // Every refresh that started leaves its report, as the function's do; a report that cannot be written is
    // told, and the refresh's outcome stands.
    let report = match refresh::write_report(&ctx.s3, &ctx.bucket, rule, now, Some(&key), &result).await {
        Ok(key) => Some(key),
        Err(e) => {
            eprintln!("warning: the refresh report was not written: {e}");
            None
        }
    };
    let done = result?;
    let mut text = format!(
        "refreshed {} from {key} into {} on {}{}\n",
        rule.name,
        done.database,
        rule.into.instance,
        if done.swapped { " (swapped in)" } else { "" }
    );
    text.push_str(&crate::run::restored_lines(
        &done.owner_role,
        &done.tables,
        &[],
        "rows restored",
        "the manifest",
    ));
    for check in &done.checks {
        text.push_str(&format!("  check {}: {}\n", check.name, check.detail));
    }
    if let Some(key) = &report {
        text.push_str(&format!("  report: s3://{}/{key} (and .md)\n", ctx.bucket));
    }
    let json = json!({
        "command": "refresh", "plan": r.plan, "refresh": rule.name, "export": key,
        "target": {"instance": rule.into.instance, "database": done.database, "swapped": done.swapped,
                   "owner_role": done.owner_role},
        "tables": done.tables, "masked": done.masked, "checks": done.checks, "report": report,
    });
    Ok(Done { json, text })
}

/// The staging server's administrator login: its endpoint from RDS and its own Lifeboat secret, the secret's host
/// (when it names one) checked against the server's endpoints, as the restore function connects.
async fn admin_target(ctx: &crate::run::Context, instance: &str, tls: TlsSettings) -> Result<db::Target, CliError> {
    let rds = aws_sdk_rds::Client::new(&ctx.config);
    let server = lifeboat::rds::selection::discover(&rds)
        .await
        .map_err(CliError::Gather)?
        .into_iter()
        .find(|d| d.id == instance && d.cluster.is_none())
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "no instance or cluster `{instance}` (the refresh's staging server) in this region"
            ))
        })?;
    let secret_id = server.secret_id().ok_or_else(|| {
        CliError::Refused(format!(
            "{instance} has no credentials: tag it `lifeboat:secret` with the secret of its administrator (a \
             refresh never logs in to staging with the source's)"
        ))
    })?;
    let s = db::read_secret(&ctx.sm, secret_id)
        .await
        .map_err(|e| CliError::Secret {
            secret: secret_id.to_owned(),
            message: e.to_string(),
        })?;
    let endpoints: Vec<String> = server
        .endpoint
        .iter()
        .map(|(h, _)| h.clone())
        .chain(server.aliases.clone())
        .collect();
    check_host(secret_id, instance, s.host.as_deref(), &endpoints, false)
        .map_err(|e| CliError::Refused(e.to_string()))?;
    let endpoint = server.endpoint.as_ref().map(|(h, p)| (h.as_str(), *p));
    let (host, port) = plan::restore_address(true, s.host.as_deref(), s.port, endpoint)
        .ok_or_else(|| CliError::NotFound(format!("neither secret {secret_id} nor RDS says where {instance} is")))?;
    Ok(db::Target {
        host,
        port,
        dbname: MAINTENANCE_DB.to_owned(),
        user: s.username.clone(),
        password: s.password.clone(),
        tls,
    })
}
