//! `make chaos`: a month of the deployed stack's schedules under faults, with invariants checked after every day
//! and figures at the end (the book's guide/chaos.md says what is injected and what is not).
//!
//! The world is the deployed-stack test's (`crate::demo::deployed`): `infra/template.yaml` deployed into moto, a
//! database and a cache under one plan with every kind of rule, and every function started with the environment
//! and role the stack gave it, but reaching AWS through the fault proxy (`crate::faults`). Each day runs the ticks
//! the plan makes due, with the inputs of the deployed schedules: the snapshot tick at 01:00 and 03:00 (the restore
//! tests it starts run through the deployed state machine's definition), the export tick at 02:00 and 02:15, the
//! rotate tick at 03:15, the monitor run at 04:00, and a rotation on the first day and the 16th. The plan is the
//! deployed test's without its 01:30 cache test, which fails on purpose there.
//! A run that fails is delivered again as Lambda delivers an asynchronous event again (twice), and every failed
//! attempt and failed restore test is signalled as AWS would (its alarm or its execution's event, through notify's
//! rule). One event of each day is delivered a second time after its success, and the state before and after
//! compared. The harness's own clients reach moto directly, so the invariants see the cloud as it is.

pub mod faults;
pub mod figures;
pub mod invariants;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::asl::{self, Failure, Tasks};
use crate::demo::deployed::{self, Steps, World};
use crate::stack::Deployed;
use faults::DataFault;
use figures::Figures;
use invariants::{Invariant, Ledger, RunFailure, Violation};

/// How often Lambda delivers a failed asynchronous event again (its default, which the stack does not change).
const LAMBDA_RETRIES: u32 = 2;
/// The master user of the restored copies (`crate::demo::deployed`'s).
const MASTER_USER: &str = "x";
const DB: &str = "app-db";
/// A session of Lifeboat's (`PGAPPNAME`, `shared/src/postgres/db.rs`) waiting on a lock: the export's `pg_dump`
/// waiting on the harness's lock on `orders`.
const LOCK_WAITER: &str = "application_name = 'lifeboat' and wait_event_type = 'Lock'";
const CACHE: &str = "app-cache";

/// What a run is asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Days of schedules (a month: 30).
    pub days: u32,
    /// The seed of every draw: the proxy's faults and the day's redelivered event.
    pub seed: u64,
    /// The wall-clock bound: no day starts past it, and a run that stops early says so.
    pub bound: Duration,
    /// The share of AWS requests that draw a fault, in percent.
    pub aws_fault_percent: f64,
    /// Where the functions' logs go.
    pub logs: PathBuf,
}

/// A chaos run under way: the world, its functions behind the proxy, and what has been seen.
struct Run<'a> {
    w: &'a World,
    deployed: &'a Deployed,
    proxy: &'a crate::faults::Faults,
    seed: u64,
    percent: f64,
    ledger: Ledger,
    figures: Figures,
}

/// Runs `options.days` days under faults and returns the figures (violations included).
pub async fn run(options: &Options) -> Figures {
    let started = Instant::now();
    let w = deployed::world_with(&[("AgeIdentitySecret", IDENTITY_SECRET)]).await;
    restore_tests_decrypt(&w).await;
    // The deployed test's plan without its 01:30 cache test (a failure on purpose, before the day's RDB copy).
    let mut plan = deployed::plan();
    if let Some(tests) = plan["plans"]["app"]["restore_tests"].as_array_mut() {
        tests.retain(|t| t["schedule"] != "30 1 * * *");
    }
    let s3 = aws_sdk_s3::Client::new(&w.config);
    crate::plans::put_json(&s3, deployed::PLANS, "lifeboat/plans.json", &plan).await;
    let proxy = crate::faults::Faults::start(&w.moto, &faults::background(options.seed, options.aws_fault_percent));
    let local = deployed::world_settings(&w.pg, &w.redis);
    let deployed_functions = Deployed::start_at(&w.stack, &proxy.endpoint, &local, &options.logs);
    let foreign = invariants::foreign(&w).await;
    let mut run = Run {
        w: &w,
        deployed: &deployed_functions,
        proxy: &proxy,
        seed: options.seed,
        percent: options.aws_fault_percent,
        ledger: Ledger {
            foreign,
            ..Ledger::default()
        },
        figures: Figures::new(options.days, options.seed),
    };
    let first = w.day - chrono::Duration::days(i64::from(options.days) - 1);
    for d in 0..options.days {
        if started.elapsed() > options.bound {
            run.figures.stopped_after = Some(d);
            break;
        }
        let day = first + chrono::Duration::days(i64::from(d));
        run.day(d, day).await;
    }
    run.figures.injected_aws(&proxy.injected(), proxy.requests().len());
    run.figures.wall = started.elapsed();
    run.figures
}

/// The secret the stack's `AgeIdentitySecret` names: the identity the restore tests decrypt the newest export with.
const IDENTITY_SECRET: &str = "lifeboat/age-identity";

/// What a restore test needs to restore the newest export into a scratch database, as on RDS: the stack's identity
/// secret holding the world's age identity, and a master user that may create a database and its owner role.
async fn restore_tests_decrypt(w: &World) {
    use age::secrecy::ExposeSecret;
    let stored = aws_sdk_secretsmanager::Client::new(&w.config)
        .create_secret()
        .name(IDENTITY_SECRET)
        .secret_string(w.identity.0.to_string().expose_secret())
        .send()
        .await;
    let granted =
        w.pg.psql("postgres", &format!("ALTER ROLE {MASTER_USER} CREATEDB CREATEROLE"));
    assert!(
        stored.is_ok() && granted.is_ok(),
        "chaos: the restore tests' identity or master user could not be set up: {stored:?} {granted:?}"
    );
}

/// The part of a day a schedule's tick is counted in (retries and redeliveries of a failed run included).
fn part_of(schedule: &str) -> &'static str {
    if schedule.ends_with("-snapshot") {
        "snapshot ticks (01:00, 03:00)"
    } else if schedule.ends_with("-export-plan-tick") {
        "export ticks (02:00, 02:15)"
    } else if schedule.ends_with("-rotate-plan-tick") {
        "rotate tick (03:15)"
    } else {
        "other ticks"
    }
}

fn at(day: DateTime<Utc>, h: i64, m: i64) -> DateTime<Utc> {
    day + chrono::Duration::hours(h) + chrono::Duration::minutes(m)
}

impl Run<'_> {
    async fn day(&mut self, d: u32, day: DateTime<Utc>) {
        let fault = DataFault::of_day(d);
        let snapshot = self.w.stack.schedule("snapshot");
        let export = self.w.stack.schedule("export-plan-tick");
        let rotate = self.w.stack.schedule("rotate-plan-tick");
        let monitor = self.w.stack.schedule("monitor");
        let mut delivered: Vec<(String, Value)> = Vec::new();
        let mut test_fault = fault.filter(|f| f.test_state().is_some());
        for (schedule, h, m) in [
            (&snapshot, 1, 0),
            (&export, 2, 0),
            (&export, 2, 15),
            (&snapshot, 3, 0),
            (&rotate, 3, 15),
        ] {
            let event = schedule.input_at(at(day, h, m));
            let tick = Instant::now();
            self.deliver(&schedule.target_arn, &event, (fault, h, m)).await;
            self.figures.spent(part_of(&schedule.name), tick.elapsed());
            if schedule.name == snapshot.name {
                let tests = Instant::now();
                self.restore_tests(&mut test_fault).await;
                self.figures
                    .spent("restore tests (the state machine's steps)", tests.elapsed());
            }
            delivered.push((schedule.target_arn.clone(), event));
        }
        if d == 0 || d == 15 {
            let rotation = Instant::now();
            self.rotation(day).await;
            self.figures.spent("rotations", rotation.elapsed());
        }
        // Monitor is the janitor too: what had expired before it ran must be gone after.
        let janitor = Utc::now();
        let tick = Instant::now();
        if self
            .deliver(&monitor.target_arn, &monitor.input_at(at(day, 4, 0)), (None, 4, 0))
            .await
            .is_some()
        {
            self.ledger.janitor_runs.push(janitor);
        }
        self.figures.spent("monitor (04:00)", tick.elapsed());
        let again = Instant::now();
        self.redeliver(d, &delivered).await;
        self.figures.spent("redelivery of one event a day", again.elapsed());
        // Judged at the day's last tick: the latest moment a run could have changed what the checks see.
        let checks = Instant::now();
        let found = invariants::check(self.w, &mut self.ledger, at(day, 4, 0)).await;
        self.figures.spent("the invariants' checks", checks.elapsed());
        self.figures.day_checked(d, found);
    }

    /// Delivers `event` to the function `arn`, and again as Lambda does while it fails; `first` names the data
    /// fault (if any) the first attempt gets when it is the 02:00 export tick's.
    async fn deliver(&mut self, arn: &str, event: &Value, first: (Option<DataFault>, i64, i64)) -> Option<Value> {
        let (fault, h, m) = first;
        let export_tick = (h, m) == (2, 0) && arn == self.w.stack.schedule("export-plan-tick").target_arn;
        let mut failed_at: Option<Instant> = None;
        for attempt in 0..=LAMBDA_RETRIES {
            let inject = fault.filter(|_| attempt == 0 && export_tick);
            let answer = self.invoke_with(arn, event, inject);
            self.figures.runs += 1;
            match answer {
                Ok(v) => {
                    if let Some(t) = failed_at {
                        self.figures.recovered(t.elapsed());
                    }
                    return Some(v);
                }
                Err(e) => {
                    failed_at = Some(Instant::now());
                    self.figures.failed_attempts += 1;
                    let function = self.deployed.function(arn).logical_id.clone();
                    let failure = RunFailure {
                        function,
                        at: event_time(event),
                        error: e.lines().next().unwrap_or("").to_owned(),
                        resource: None,
                        execution: None,
                    };
                    self.fail(failure).await;
                }
            }
        }
        self.figures.unrecovered += 1;
        None
    }

    /// One invocation, with `fault` injected while it runs.
    fn invoke_with(&mut self, arn: &str, event: &Value, fault: Option<DataFault>) -> Result<Value, String> {
        let deployed = self.deployed;
        let pg = &self.w.pg;
        match fault {
            Some(DataFault::PgDumpKilled) => {
                // The dump waits on a lock the harness holds, where the watcher finds it and ends its connection.
                let done = AtomicBool::new(false);
                let (answer, hit) = faults::with_table_locked(pg, "app", "orders", || {
                    std::thread::scope(|s| {
                        let watcher = s.spawn(|| {
                            faults::when_session(pg, LOCK_WAITER, Duration::from_secs(30), &done, |pid| {
                                faults::terminate(pg, pid);
                            })
                        });
                        let answer = tokio::task::block_in_place(|| deployed.invoke(arn, event));
                        done.store(true, Ordering::SeqCst);
                        (answer, watcher.join().unwrap_or(false))
                    })
                });
                self.figures.data_fault(DataFault::PgDumpKilled, hit);
                answer
            }
            Some(DataFault::UploadPartFails) => {
                let burst = faults::background(self.seed, self.percent).on(
                    "s3",
                    "UploadPart",
                    crate::faults::Kind::Error500,
                    1.0,
                );
                // The burst's rule comes after the background's, so the draws beyond their share all fail.
                self.proxy.set_rules(&burst);
                let answer = tokio::task::block_in_place(|| deployed.invoke(arn, event));
                self.proxy.set_rules(&faults::background(self.seed, self.percent));
                self.figures.data_fault(DataFault::UploadPartFails, true);
                answer
            }
            _ => tokio::task::block_in_place(|| deployed.invoke(arn, event)),
        }
    }

    /// Records a failure and signals it as AWS would.
    async fn fail(&mut self, failure: RunFailure) {
        let mut said = Err(String::new());
        for _ in 0..3 {
            said = invariants::signal(self.w, self.deployed, &mut self.ledger.shipped, &failure).await;
            if said.is_ok() {
                break;
            }
        }
        if let Err(e) = said {
            self.figures.violation(Violation {
                invariant: Invariant::Signalled,
                what: format!(
                    "{} failed at {}: notify did not take its signal: {e}",
                    failure.function, failure.at
                ),
            });
        }
        self.ledger.failures.push(failure);
    }

    /// Runs every restore-test execution started since the last call through the deployed definition, with the
    /// day's data fault where it is one of a restore test's.
    async fn restore_tests(&mut self, fault: &mut Option<DataFault>) {
        let (machine, definition) = self.w.stack.state_machine("restore-test");
        let sfn = aws_sdk_sfn::Client::new(&self.w.config);
        let Ok(started) = deployed::started_since(&sfn, &machine, &mut self.figures.executions).await else {
            return;
        };
        for (arn, input) in started {
            let steps = Steps::new(self.deployed, &self.w.config, &self.w.pg, &self.w.redis, MASTER_USER);
            let mut tasks = Faulty {
                steps,
                fault: *fault,
                w: self.w,
                armed: None,
                hit: None,
            };
            let done = tokio::task::block_in_place(|| asl::run(&definition, input.clone(), &mut tasks));
            if let Some((f, hit)) = tasks.hit {
                self.figures.data_fault(f, hit);
                *fault = None;
            }
            self.figures.restore_tests += 1;
            if let Err(failure) = done.result {
                self.figures.failed_restore_tests += 1;
                let resource = [DB, CACHE]
                    .into_iter()
                    .find(|r| failure.cause.contains(r) || input.to_string().contains(r))
                    .map(str::to_owned);
                let failure = RunFailure {
                    function: "RestoreTestStateMachine".to_owned(),
                    at: Utc::now(),
                    error: failure.error,
                    resource,
                    execution: Some(arn.clone()),
                };
                self.fail(failure).await;
            }
        }
    }

    /// A rotation as Secrets Manager runs it (its four steps), and then the secret's current version must log in.
    async fn rotation(&mut self, day: DateTime<Utc>) {
        let sm = aws_sdk_secretsmanager::Client::new(&self.w.config);
        let secret_id = format!("lifeboat/{DB}");
        let Ok(described) = sm.describe_secret().secret_id(&secret_id).send().await else {
            return;
        };
        let Some(function) = described.rotation_lambda_arn().map(str::to_owned) else {
            self.figures.violation(Violation {
                invariant: Invariant::ReportedGood,
                what: format!("{secret_id} has no rotation function after the rotate tick"),
            });
            return;
        };
        let token = crate::stage_rotation(&sm, &secret_id).await;
        for step in crate::ROTATION_STEPS {
            let event = serde_json::json!({"SecretId": secret_id, "ClientRequestToken": token, "Step": step});
            if self.deliver(&function, &event, (None, 0, 0)).await.is_none() {
                break;
            }
        }
        let _ = crate::end_rotation(&sm, &secret_id, &token).await;
        self.figures.rotations += 1;
        let current = sm
            .get_secret_value()
            .secret_id(&secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await;
        let login = current
            .ok()
            .and_then(|v| v.secret_string().and_then(|s| serde_json::from_str::<Value>(s).ok()));
        let works = login.as_ref().is_some_and(|v| {
            let (user, password) = (
                v["username"].as_str().unwrap_or(""),
                v["password"].as_str().unwrap_or(""),
            );
            self.w.pg.psql_as(user, password, "app", "select 1").is_ok()
        });
        if !works {
            self.figures.violation(Violation {
                invariant: Invariant::ReportedGood,
                what: format!(
                    "after the rotation of {}, {secret_id}'s AWSCURRENT does not log in",
                    day.date_naive()
                ),
            });
        }
    }

    /// Delivers one of the day's successful events a second time, as an at-least-once delivery may, and compares
    /// the state before and after.
    async fn redeliver(&mut self, d: u32, delivered: &[(String, Value)]) {
        if delivered.is_empty() {
            return;
        }
        let pick = usize::try_from(self.seed.wrapping_add(u64::from(d)) % delivered.len() as u64).unwrap_or(0);
        let (arn, event) = &delivered[pick];
        let before = invariants::state(self.w).await;
        let answer = self.deliver(arn, event, (None, 0, 0)).await;
        self.figures.redeliveries += 1;
        if answer.is_none() {
            return;
        }
        let after = invariants::state(self.w).await;
        let what = format!("{} at {}", self.deployed.function(arn).logical_id, event_time(event));
        for v in invariants::converges(&what, &before, &after) {
            self.figures.violation(v);
        }
    }
}

/// The time of a scheduled event (`time`), or now for events without one (a rotation step).
fn event_time(event: &Value) -> DateTime<Utc> {
    event["time"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(Utc::now)
}

/// The restore-test steps with a data fault injected into the task of the state it belongs to: the database's
/// Verify (its scratch restore) or the cache's CacheVerify (its key count).
struct Faulty<'a> {
    steps: Steps<'a>,
    fault: Option<DataFault>,
    w: &'a World,
    /// The fault, once its state was entered: injected into that state's task.
    armed: Option<DataFault>,
    /// The fault injected, and whether it caught the operation under way.
    hit: Option<(DataFault, bool)>,
}

impl Tasks for Faulty<'_> {
    fn invoke(&mut self, function: &str, payload: &Value) -> Result<Value, Failure> {
        let Some(fault) = self.armed.take() else {
            return self.steps.invoke(function, payload);
        };
        let (pg, redis) = (&self.w.pg, &self.w.redis);
        let steps = &mut self.steps;
        let done = AtomicBool::new(false);
        // A session of the copy's master user waiting on a lock: the row count waiting on `orders`.
        let waiter = format!("usename = '{MASTER_USER}' and wait_event_type = 'Lock'");
        let (answer, hit) = std::thread::scope(|s| match fault {
            DataFault::PgRestartInTest | DataFault::PgCheckKilled => {
                // The copy's rows are counted on a table the harness holds locked: the count waits where the
                // watcher finds it (a check of this small database takes a few milliseconds, too short to catch
                // unaided), and the server is restarted or the count's connection ended under it.
                faults::with_table_locked(pg, "app", "orders", || {
                    let watcher = s.spawn(|| {
                        faults::when_session(pg, &waiter, Duration::from_secs(60), &done, |pid| {
                            if fault == DataFault::PgRestartInTest {
                                pg.restart();
                            } else {
                                faults::terminate(pg, pid);
                            }
                        })
                    });
                    let answer = steps.invoke(function, payload);
                    done.store(true, Ordering::SeqCst);
                    (answer, watcher.join().unwrap_or(false))
                })
            }
            DataFault::PgRestoreKilled => {
                // A session in the scratch database (`lifeboat_verify_<time>`): the scratch restore under way.
                let scratch = "datname like 'lifeboat\\_verify\\_%' and backend_type = 'client backend'";
                let watcher = s.spawn(|| {
                    faults::when_session(pg, scratch, Duration::from_secs(60), &done, |pid| {
                        faults::terminate(pg, pid);
                    })
                });
                let answer = steps.invoke(function, payload);
                done.store(true, Ordering::SeqCst);
                (answer, watcher.join().unwrap_or(false))
            }
            _ => {
                let frozen = redis.freeze();
                s.spawn(move || {
                    std::thread::sleep(Duration::from_secs(12));
                    drop(frozen);
                });
                (steps.invoke(function, payload), true)
            }
        });
        self.hit = Some((fault, hit));
        answer
    }

    fn entering(&mut self, state: &str, input: &Value) {
        self.steps.entering(state, input);
        let armed = self
            .fault
            .and_then(DataFault::test_state)
            .is_some_and(|suffix| state.ends_with(suffix));
        if armed {
            self.armed = self.fault.take();
        }
    }
}
