//! The demo's functions called in this process: each handler with the dependencies its binary would build from
//! the same environment ([`super::World::env`]), so a test tells the demo's story without the Lambda runtime.
//!
//! The functions that judge against a clock (snapshot's retention, monitor's ages and its evidence report) are
//! given the world's [`Clock::now`], never a setting: see the clock's design note in [`super`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Clock, Invoke, World, REGION};

/// Every function's handler with its dependencies.
#[derive(Debug)]
pub struct InProcess {
    clock: Clock,
    snapshot: snapshot::Deps,
    export: export::Deps,
    rotate: rotate::Deps,
    restore: restore::Deps,
    restore_test: restore::Deps,
    monitor: monitor::Deps,
    notify: notify::Deps,
}

fn lookup(env: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |n: &str| env.get(n).cloned()
}

impl InProcess {
    pub fn new(w: &World) -> Self {
        let config = w.config(REGION);
        let env = &w.env;
        let restore_entry = |entry: &str| {
            let mut env = env.clone();
            env.insert("LIFEBOAT_RESTORE_ENTRY".to_owned(), entry.to_owned());
            let settings = restore::settings::RestoreSettings::from_env(&lookup(&env)).unwrap();
            restore::Deps::new(&config, settings)
        };
        Self {
            clock: w.clock,
            snapshot: snapshot::Deps::new(
                &config,
                lifeboat::rds::settings::SnapshotSettings::from_env(&lookup(env)).unwrap(),
            ),
            export: export::Deps::new(
                &config,
                export::settings::ExportSettings::from_env(&lookup(env)).unwrap(),
            ),
            rotate: rotate::Deps::new(
                &config,
                rotate::settings::RotateSettings::from_env(&lookup(env)).unwrap(),
            ),
            restore: restore_entry("console"),
            restore_test: restore_entry("steps"),
            monitor: monitor::Deps::new(
                &config,
                monitor::settings::MonitorSettings::from_env(&lookup(env)).unwrap(),
            ),
            notify: notify::Deps::new(
                &config,
                notify::settings::NotifySettings::from_env(&lookup(env)).unwrap(),
            ),
        }
    }
}

fn json<T: serde::Serialize, E: std::fmt::Display>(r: Result<T, E>) -> Result<Value, String> {
    r.map_err(|e| e.to_string())
        .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
}

impl Invoke for InProcess {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let p = payload.clone();
        let now = self.clock.now();
        match function {
            "snapshot" => json(snapshot::handle_at(&self.snapshot, p, now).await),
            "export" => json(export::invoke(&self.export, p, None).await),
            "rotate" => json(rotate::handle(&self.rotate, p, None).await),
            "restore" => json(restore::handle(&self.restore, p, None).await),
            "restore-test" => json(restore::handle(&self.restore_test, p, None).await),
            "monitor" => json(monitor::run_at(&self.monitor, p, now).await),
            "notify" => json(notify::handle(&self.notify, p).await),
            other => Err(format!("the demo has no function {other}")),
        }
    }

    /// In-process, the handlers run outside Lambda and publish with PutMetricData: moto's CloudWatch has them.
    async fn metric_names(&self, w: &World) -> Vec<String> {
        let cw = aws_sdk_cloudwatch::Client::new(&w.config(REGION));
        let listed = cw.list_metrics().namespace("Lifeboat").send().await.unwrap();
        let mut names: Vec<String> = listed
            .metrics()
            .iter()
            .filter_map(|m| m.metric_name().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
