//! The stack a user deploys, deployed here: `infra/template.yaml` through SAM's transform into moto's
//! CloudFormation (`tests/stack/deploy.py`), and its functions run as Lambda would run them, each with **the
//! environment and the role the stack gave it**, invoked with **the input of the stack's own schedules and
//! rules** ([`Stack::schedule`], [`Schedule::input_at`]), the restore tests run by **the deployed state machine's
//! definition** (`crate::asl`), and its ECS tasks run as `aws ecs run-task` would start them ([`Task::run`]): the
//! binary the container's entry point names, on this machine (no container, no Fargate networking), with the task
//! definition's environment, its secrets, the run's overrides and the task role's credentials.
//!
//! What the local world adds to a function's environment, and nothing else ([`Local`]): where AWS is (moto's
//! endpoint), the region and credentials Lambda would provide (the access key is the function's role name, so a
//! recording of moto's requests tells which function made each), the level and format Lambda derives from the
//! function's `LoggingConfig`, and the settings that point a function at this machine's servers instead of the
//! endpoints moto makes up (named by the caller, each with its reason).
//!
//! Never: sets a `LIFEBOAT_*` variable the stack did not set unless the caller names it as the local world's, or
//! invokes a function with an input the stack's wiring would not send.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tempfile::TempDir;

use crate::lambda::RuntimeApi;
use crate::moto::Moto;
use crate::repo_root;

/// A deployed stack: what `tests/stack/deploy.py` read back from moto after creating it.
#[derive(Debug)]
pub struct Stack {
    pub doc: Value,
    pub name: String,
    pub region: String,
    pub dir: TempDir,
}

/// One function of the stack, as Lambda would start it.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    /// The execution role's name: the access key the function signs with here.
    pub role_name: String,
    /// The binary the function's code or image runs.
    pub binary: String,
    /// The environment the stack set, as strings.
    pub env: BTreeMap<String, String>,
    /// `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`, as Lambda derives them from `LoggingConfig`.
    pub logging: Vec<(String, String)>,
}

/// One ECS task definition of the stack (its one container), as ECS would start it.
#[derive(Debug, Clone)]
pub struct Task {
    pub logical_id: String,
    pub arn: String,
    /// The container a run's overrides name.
    pub container: String,
    /// The binary the container's entry point names (its own, else the image's ENTRYPOINT).
    pub binary: String,
    /// The command after the entry point.
    pub command: Vec<String>,
    /// The task definition's environment.
    pub env: BTreeMap<String, String>,
    /// Variables the ECS agent reads from Secrets Manager with the execution role: name -> `valueFrom`.
    pub secrets: BTreeMap<String, String>,
    /// The task role's name: the access key the task's code signs with here.
    pub role_name: String,
    /// The execution role's name: the access key the secrets are read with here, as the ECS agent reads them.
    pub execution_role_name: String,
    /// The container's log configuration, as the task definition holds it.
    pub log_configuration: Value,
}

/// One EventBridge Scheduler schedule of the stack.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub expression: String,
    pub target_arn: String,
    pub input: String,
}

impl Schedule {
    /// The latest time at or before `t` at which this schedule fires, for the expressions the stack's schedules
    /// use: `cron(M H * * ? *)` (daily), `cron(0/15 * * * ? *)` (quarter hours) and `rate(...)` (any moment: a rate
    /// counts from when the schedule was made). Panics, naming the expression, on any other.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::{Duration, DurationRound, Timelike};
        let minute = t.duration_trunc(Duration::minutes(1)).unwrap_or(t);
        if self.expression.starts_with("rate(") {
            return minute;
        }
        let fields: Vec<&str> = self
            .expression
            .strip_prefix("cron(")
            .and_then(|e| e.strip_suffix(')'))
            .map(|e| e.split(' ').collect())
            .unwrap_or_default();
        match fields.as_slice() {
            ["0/15", "*", "*", "*", "?", "*"] => t.duration_trunc(Duration::minutes(15)).unwrap_or(t),
            [m, h, "*", "*", "?", "*"] => {
                let (m, h): (u32, u32) = match (m.parse(), h.parse()) {
                    (Ok(m), Ok(h)) => (m, h),
                    _ => panic!("schedule {}: {} is not a daily time", self.name, self.expression),
                };
                let today = minute
                    .with_hour(h)
                    .and_then(|d| d.with_minute(m))
                    .unwrap_or_else(|| panic!("schedule {}: {} is not a time", self.name, self.expression));
                if today <= t {
                    today
                } else {
                    today - Duration::days(1)
                }
            }
            _ => panic!("schedule {}: the harness does not read {}", self.name, self.expression),
        }
    }

    /// The event Scheduler delivers for the run due at `at`: the schedule's own input with its context
    /// attributes filled in as Scheduler fills them.
    pub fn input_at(&self, at: DateTime<Utc>) -> Value {
        let text = self
            .input
            .replace(
                "<aws.scheduler.scheduled-time>",
                &at.to_rfc3339_opts(SecondsFormat::Secs, true),
            )
            .replace("<aws.scheduler.schedule-arn>", &self.name)
            .replace("<aws.scheduler.attempt-number>", "1");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("schedule {}'s input is not JSON ({e}): {text}", self.name))
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Stack {
    /// Deploys the template as stack `name` into `moto`'s `region`, with `params`; the code zips are made from the
    /// function binaries this build produced (what `make package` zips). The network a user has before deploying
    /// (a VPC, two subnets, a DB subnet group) is made first and given as `VpcId`, `SubnetIds` and
    /// `RestoreSubnetGroup`.
    pub fn deploy(moto: &Moto, region: &str, name: &str, params: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let artefacts = dir.path().join("artefacts");
        std::fs::create_dir_all(&artefacts).expect("the artefacts directory");
        let python = repo_root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `make test`, which creates .venv with the pinned tools (tests/requirements.txt)",
            python.display()
        );
        let mut cmd = Command::new(python);
        cmd.arg(repo_root().join("tests/stack/deploy.py"))
            .args(["--endpoint", &moto.endpoint, "--region", region, "--stack", name])
            .arg("--template")
            .arg(repo_root().join("infra/template.yaml"))
            .arg("--artefacts")
            .arg(&artefacts)
            .arg("--binaries")
            .arg(binary_dir())
            .arg("--network")
            .arg("--transformed")
            .arg(dir.path().join("transformed.json"));
        // The image the image functions name: the harness runs their binaries, never an image, so any digest does;
        // and the architecture of the binaries it runs.
        let digest = format!("sha256:{}", "0".repeat(64));
        let defaults = [
            ("ImageDigest", digest.as_str()),
            ("Architecture", std::env::consts::ARCH),
        ];
        for (k, v) in defaults
            .iter()
            .filter(|(k, _)| !params.iter().any(|(p, _)| p == k))
            .chain(params)
        {
            cmd.arg("--param").arg(format!("{k}={v}"));
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .expect("running tests/stack/deploy.py");
        assert!(
            out.status.success(),
            "deploying infra/template.yaml into moto failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).expect("deploy.py prints JSON");
        std::fs::write(dir.path().join("stack.json"), &out.stdout).expect("writing stack.json");
        // The bucket's policy is what lets ElastiCache export into it; moto's S3 is not given it (deploy.py says
        // why), so the emulator's export reads it from here.
        moto.keep_bucket_policies(&doc["bucket_policies"]);
        Self {
            doc,
            name: name.to_owned(),
            region: region.to_owned(),
            dir,
        }
    }

    /// `stack.json`: what the deploy read back (the permission check reads it).
    pub fn document_path(&self) -> PathBuf {
        self.dir.path().join("stack.json")
    }

    pub fn functions(&self) -> Vec<Function> {
        let roles = &self.doc["roles"];
        self.doc["functions"]
            .as_object()
            .expect("functions")
            .iter()
            .map(|(lid, f)| {
                let role_arn = f["role"].as_str().expect("a role");
                let logging = &f["logging"];
                let mut log = Vec::new();
                if let Some(format) = logging["LogFormat"].as_str() {
                    log.push(("AWS_LAMBDA_LOG_FORMAT".to_owned(), format.to_owned()));
                    if format == "JSON" {
                        let level = logging["ApplicationLogLevel"].as_str().unwrap_or("INFO");
                        log.push(("AWS_LAMBDA_LOG_LEVEL".to_owned(), level.to_owned()));
                    }
                }
                Function {
                    logical_id: lid.clone(),
                    name: f["name"].as_str().expect("a name").to_owned(),
                    arn: f["arn"].as_str().expect("an arn").to_owned(),
                    role_name: roles[role_arn]["name"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{lid}'s role {role_arn} is not one of the stack's"))
                        .to_owned(),
                    binary: f["binary"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{lid}: the template names no binary for it"))
                        .to_owned(),
                    env: f["environment"]
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), as_text(v))).collect())
                        .unwrap_or_default(),
                    logging: log,
                }
            })
            .collect()
    }

    pub fn function(&self, logical_id: &str) -> Function {
        self.functions()
            .into_iter()
            .find(|f| f.logical_id == logical_id)
            .unwrap_or_else(|| panic!("the stack has no function {logical_id}"))
    }

    pub fn schedules(&self) -> Vec<Schedule> {
        self.doc["schedules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Schedule {
                name: as_text(&s["name"]),
                expression: as_text(&s["expression"]),
                target_arn: as_text(&s["target"]["Arn"]),
                input: as_text(&s["target"]["Input"]),
            })
            .collect()
    }

    /// The stack's ECS task definitions.
    pub fn tasks(&self) -> Vec<Task> {
        let role_name = |lid: &str, arn: &Value| -> String {
            let arn = arn.as_str().unwrap_or_else(|| panic!("{lid} names no role"));
            self.doc["roles"][arn]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{lid}'s role {arn} is not one of the stack's"))
                .to_owned()
        };
        self.doc["tasks"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(lid, t)| {
                let containers = t["containers"].as_array().expect("containers");
                assert_eq!(containers.len(), 1, "{lid}: the harness runs tasks of one container");
                let c = &containers[0];
                let strings = |v: &Value| -> BTreeMap<String, String> {
                    v.as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), as_text(v))).collect())
                        .unwrap_or_default()
                };
                Task {
                    logical_id: lid.clone(),
                    arn: as_text(&t["arn"]),
                    container: as_text(&c["name"]),
                    binary: as_text(&c["binary"]),
                    command: c["command"].as_array().into_iter().flatten().map(as_text).collect(),
                    env: strings(&c["environment"]),
                    secrets: strings(&c["secrets"]),
                    role_name: role_name(lid, &t["task_role"]),
                    execution_role_name: role_name(lid, &t["execution_role"]),
                    log_configuration: c["log_configuration"].clone(),
                }
            })
            .collect()
    }

    pub fn task(&self, logical_id: &str) -> Task {
        self.tasks()
            .into_iter()
            .find(|t| t.logical_id == logical_id)
            .unwrap_or_else(|| panic!("the stack has no task definition {logical_id}"))
    }

    /// A resource's physical id (for a cluster, its name).
    pub fn physical_id(&self, logical_id: &str) -> String {
        self.doc["resources"][logical_id]["physical_id"]
            .as_str()
            .unwrap_or_else(|| panic!("the stack has no resource {logical_id}"))
            .to_owned()
    }

    /// The schedule named `<stack>-<suffix>`.
    pub fn schedule(&self, suffix: &str) -> Schedule {
        let name = format!("{}-{suffix}", self.name);
        self.schedules()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("the stack has no schedule {name}"))
    }

    /// The EventBridge rules whose targets include `function`, with their event patterns.
    pub fn rules_targeting(&self, function: &Function) -> Vec<Value> {
        self.doc["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["Arn"] == function.arn.as_str())
            })
            .cloned()
            .collect()
    }

    /// The deployed state machine's ARN and definition.
    pub fn state_machine(&self, suffix: &str) -> (String, Value) {
        let name = format!("{}-{suffix}", self.name);
        let m = self.doc["state_machines"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == name.as_str())
            .unwrap_or_else(|| panic!("the stack has no state machine {name}"));
        (as_text(&m["arn"]), m["definition"].clone())
    }
}

/// Where the function binaries of this build are: beside this executable, or one level up from `deps/`.
fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("this executable's path");
    let dir = exe.parent().expect("its directory").to_owned();
    if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>").to_owned()
    } else {
        dir
    }
}

/// The settings the local world adds to every function's environment, each with the reason it is not the
/// stack's (printed by the demo and kept in the test's output).
#[derive(Debug, Clone, Default)]
pub struct Local {
    pub vars: Vec<(String, String, &'static str)>,
}

impl Local {
    pub fn with(mut self, key: &str, value: impl Into<String>, why: &'static str) -> Self {
        self.vars.push((key.to_owned(), value.into(), why));
        self
    }
}

/// What a run of a task did: the process's exit status and its output, which awslogs would ship to the container's
/// log group (the binaries write their log lines and, last, their result on standard output).
#[derive(Debug)]
pub struct TaskRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A Secrets Manager `valueFrom` as ECS reads it: the secret (ARN or name), then optionally a JSON key, a version
/// stage and a version id (`arn:...:secret:<name>-<suffix>:<json key>:<stage>:<id>`, empty fields unset).
fn secret_reference(value_from: &str) -> (String, [Option<String>; 3]) {
    let parts: Vec<&str> = value_from.split(':').collect();
    if parts.len() < 7 || parts[2] != "secretsmanager" {
        assert!(
            !value_from.starts_with("arn:") || parts.get(2) == Some(&"secretsmanager"),
            "the harness reads secrets from Secrets Manager only, not {value_from}"
        );
        return (value_from.to_owned(), [None, None, None]);
    }
    let field = |i: usize| parts.get(i).filter(|p| !p.is_empty()).map(|p| (*p).to_owned());
    (parts[..7].join(":"), [field(7), field(8), field(9)])
}

impl Task {
    /// Runs the task as `aws ecs run-task ... --overrides <overrides>` would, on this machine: the binary the
    /// container's entry point names, with the command, with only this environment (in ECS's order of precedence):
    /// the task definition's, its secrets read from Secrets Manager with the execution role's credentials as the
    /// ECS agent reads them, the run's container overrides, the region and the task role's credentials ECS gives a
    /// task (the access key is the role's name, so a recording attributes each call), moto's endpoint, and the
    /// local world's settings. There is no Lambda deadline: the process runs until it exits or `timeout`, the
    /// harness's own, passes (then it is killed and the run is an error). Output goes to `<log_dir>/<container>.log`
    /// and, as the awslogs driver ships it, to the container's log group with the execution role.
    ///
    /// An override naming a container the task definition does not have is refused, as ECS refuses it.
    pub async fn run(
        &self,
        stack: &Stack,
        moto: &Moto,
        local: &Local,
        overrides: &Value,
        log_dir: &Path,
        timeout: std::time::Duration,
    ) -> Result<TaskRun, String> {
        let mut env: BTreeMap<String, String> = self.env.clone();
        let config = crate::sdk_config(&moto.endpoint, &stack.region)
            .into_builder()
            .credentials_provider(aws_sdk_rds::config::SharedCredentialsProvider::new(
                aws_sdk_rds::config::Credentials::new(&self.execution_role_name, "local", None, None, "ecs-agent"),
            ))
            .build();
        let sm = aws_sdk_secretsmanager::Client::new(&config);
        for (name, value_from) in &self.secrets {
            let (secret, [json_key, stage, version]) = secret_reference(value_from);
            let got = sm
                .get_secret_value()
                .secret_id(&secret)
                .set_version_stage(stage)
                .set_version_id(version)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "{}: the ECS agent cannot read {name} from {secret}: {e:?}",
                        self.logical_id
                    )
                })?;
            let text = got.secret_string().unwrap_or_default().to_owned();
            let value = match json_key {
                None => text,
                Some(key) => serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get(&key).map(as_text))
                    .ok_or_else(|| format!("{}: secret {secret} has no JSON key {key} for {name}", self.logical_id))?,
            };
            env.insert(name.clone(), value);
        }
        let mut command = self.command.clone();
        for o in overrides["containerOverrides"].as_array().into_iter().flatten() {
            let name = as_text(&o["name"]);
            if name != self.container {
                return Err(format!(
                    "InvalidParameterException: Override for container named {name} is not a container in the \
                     TaskDefinition {} (its container is {})",
                    self.arn, self.container
                ));
            }
            for e in o["environment"].as_array().into_iter().flatten() {
                env.insert(as_text(&e["name"]), as_text(&e["value"]));
            }
            if let Some(c) = o["command"].as_array() {
                command = c.iter().map(as_text).collect();
            }
        }
        env.extend([
            ("AWS_EXECUTION_ENV".to_owned(), "AWS_ECS_FARGATE".to_owned()),
            ("AWS_REGION".to_owned(), stack.region.clone()),
            ("AWS_DEFAULT_REGION".to_owned(), stack.region.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), self.role_name.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "local".to_owned()),
            ("AWS_ENDPOINT_URL".to_owned(), moto.endpoint.clone()),
        ]);
        env.extend(local.vars.iter().map(|(k, v, _)| (k.clone(), v.clone())));
        let exe = binary_dir().join(&self.binary);
        assert!(
            exe.exists(),
            "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
            exe.display()
        );
        std::fs::create_dir_all(log_dir).map_err(|e| format!("creating {}: {e}", log_dir.display()))?;
        let out_path = log_dir.join(format!("{}.stdout", self.container));
        let err_path = log_dir.join(format!("{}.log", self.container));
        let file = |p: &Path| File::create(p).map_err(|e| format!("creating {}: {e}", p.display()));
        let mut child = Command::new(&exe)
            .args(&command)
            .env_clear()
            // The image's PATH: the binaries name their tools by absolute path (the local world's settings).
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(file(&out_path)?)
            .stderr(file(&err_path)?)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", exe.display()))?;
        let until = std::time::Instant::now() + timeout;
        let status = tokio::task::block_in_place(|| loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                waited => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{}: {waited:?}; killed after {timeout:?}", self.logical_id));
                }
            }
        });
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let status = status.map_err(|e| format!("{e}\n{}", read(&err_path)))?;
        self.ship_logs(stack, moto, &[&out_path, &err_path], log_dir)?;
        Ok(TaskRun {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        })
    }

    /// What the awslogs driver does with a run's output (`tests/stack/awslogs.py`): a stream
    /// `<awslogs-stream-prefix>/<container>/<task id>` in the container's log group, written with the execution role.
    fn ship_logs(&self, stack: &Stack, moto: &Moto, outputs: &[&Path], log_dir: &Path) -> Result<(), String> {
        let c = &self.log_configuration;
        if c["logDriver"] != "awslogs" {
            return Err(format!(
                "{}: the harness ships logs with awslogs only, not {c}",
                self.logical_id
            ));
        }
        let options = &c["options"];
        let group = as_text(&options["awslogs-group"]);
        let stream = format!(
            "{}/{}/{}",
            as_text(&options["awslogs-stream-prefix"]),
            self.container,
            crate::random_hex(16)
        );
        let all = log_dir.join(format!("{}.awslogs", self.container));
        let text: String = outputs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        std::fs::write(&all, text).map_err(|e| format!("writing {}: {e}", all.display()))?;
        let out = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("tests/stack/awslogs.py"))
            .args([
                "--endpoint",
                &moto.endpoint,
                "--region",
                &as_text(&options["awslogs-region"]),
            ])
            .args([
                "--access-key",
                &self.execution_role_name,
                "--group",
                &group,
                "--stream",
                &stream,
            ])
            .arg("--file")
            .arg(&all)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running tests/stack/awslogs.py: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{}: awslogs could not write to {group} (region {} of stack {}): {}",
                self.logical_id,
                as_text(&options["awslogs-region"]),
                stack.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

/// The stack's functions, each a process of its binary under the local Lambda runtime API, with the stack's
/// environment; stopped on drop.
#[derive(Debug)]
pub struct Deployed {
    functions: Vec<(Function, Child)>,
    /// Dropped after the functions.
    api: RuntimeApi,
    /// One file per function, `<function name>.log`: Lambda's log stream of it.
    pub log_dir: PathBuf,
}

impl Deployed {
    /// Starts every function of `stack` against `moto`; their output goes to `<log_dir>/<function name>.log`.
    pub fn start(stack: &Stack, moto: &Moto, local: &Local, log_dir: &Path) -> Self {
        Self::start_at(stack, &moto.endpoint, local, log_dir)
    }

    /// As [`Deployed::start`], the functions reaching AWS at `endpoint`: moto's own, or a fault proxy in front of it
    /// (`crate::faults`).
    pub fn start_at(stack: &Stack, endpoint: &str, local: &Local, log_dir: &Path) -> Self {
        std::fs::create_dir_all(log_dir).unwrap_or_else(|e| panic!("creating {}: {e}", log_dir.display()));
        let names: Vec<String> = stack.functions().into_iter().map(|f| f.name).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let api = RuntimeApi::start_named(&log_dir.join("runtime-api.log"), &names);
        let bin = binary_dir();
        let mut functions = Vec::new();
        for f in stack.functions() {
            let exe = bin.join(&f.binary);
            assert!(
                exe.exists(),
                "{} is missing: build the functions first (`cargo build --workspace`)",
                exe.display()
            );
            let mut env: Vec<(String, String)> = f.env.clone().into_iter().collect();
            env.extend(f.logging.iter().cloned());
            env.extend([
                ("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned()),
                ("AWS_REGION".to_owned(), stack.region.clone()),
                ("AWS_DEFAULT_REGION".to_owned(), stack.region.clone()),
                ("AWS_ACCESS_KEY_ID".to_owned(), f.role_name.clone()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "local".to_owned()),
            ]);
            env.extend(local.vars.iter().map(|(k, v, _)| (k.clone(), v.clone())));
            let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let path = log_dir.join(format!("{}.log", f.name));
            let log_file = File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
            let out = || log_file.try_clone().expect("the function log");
            let child = api.spawn(&f.name, &exe, &vars, out(), out());
            functions.push((f, child));
        }
        Self {
            functions,
            api,
            log_dir: log_dir.to_owned(),
        }
    }

    /// The function a stack ARN or name stands for.
    pub fn function(&self, arn_or_name: &str) -> &Function {
        let name = arn_or_name.rsplit(':').next().unwrap_or(arn_or_name);
        &self
            .functions
            .iter()
            .find(|(f, _)| f.name == name || f.logical_id == arn_or_name)
            .unwrap_or_else(|| panic!("the stack has no function {arn_or_name}"))
            .0
    }

    /// Invokes the function named by `arn_or_name` (ARN, name or logical id) with `payload`.
    pub fn invoke(&self, arn_or_name: &str, payload: &Value) -> Result<Value, String> {
        let name = self.function(arn_or_name).name.clone();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("event.json");
        std::fs::write(&data, payload.to_string()).map_err(|e| e.to_string())?;
        self.api.invoke(&name, &data)
    }

    /// A function's output so far (by ARN, name or logical id).
    pub fn log_text(&self, arn_or_name: &str) -> String {
        let name = &self.function(arn_or_name).name;
        std::fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        for (_, child) in &mut self.functions {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(expression: &str) -> Schedule {
        Schedule {
            name: "s".into(),
            expression: expression.into(),
            target_arn: String::new(),
            input: String::new(),
        }
    }

    #[test]
    fn a_secrets_value_from_is_read_as_ecs_reads_it() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lifeboat/app-AbCdEf";
        assert_eq!(secret_reference(arn), (arn.to_owned(), [None, None, None]));
        assert_eq!(
            secret_reference(&format!("{arn}:password::")),
            (arn.to_owned(), [Some("password".to_owned()), None, None])
        );
        assert_eq!(
            secret_reference(&format!("{arn}::AWSPREVIOUS:")),
            (arn.to_owned(), [None, Some("AWSPREVIOUS".to_owned()), None])
        );
        assert_eq!(
            secret_reference("lifeboat/app"),
            ("lifeboat/app".to_owned(), [None, None, None])
        );
    }

    #[test]
    fn the_latest_run_of_a_schedule_is_never_after_the_moment_asked() {
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 17, 52, 30).unwrap();
        let at = |h, m| Utc.with_ymd_and_hms(2026, 12, 6, h, m, 0).unwrap();
        assert_eq!(schedule("cron(15 3 * * ? *)").latest_at_or_before(t), at(3, 15));
        assert_eq!(
            schedule("cron(15 18 * * ? *)").latest_at_or_before(t),
            at(18, 15) - chrono::Duration::days(1)
        );
        assert_eq!(schedule("cron(0/15 * * * ? *)").latest_at_or_before(t), at(17, 45));
        assert_eq!(schedule("rate(1 hour)").latest_at_or_before(t), at(17, 52));
        let odd = std::panic::catch_unwind(|| schedule("cron(0 6 1 * ? *)").latest_at_or_before(t));
        assert!(odd.is_err(), "a monthly schedule is not read as a daily one");
    }
}
