//! Permissions proven by use, proven themselves: the template deployed into moto's CloudFormation
//! (`tests/stack/deploy.py`), one real function binary run with the environment and the role the stack gave it
//! on its deployed schedule's own input, moto recording every request, and `tests/stack/permissions.py` checking
//! each call against that role. The check passes on the deployed role, and fails, naming the function, the action
//! and the resource, once one action the function used is taken out of the role; the same recording then proves
//! that conditions are judged on the request's own values, that a Deny wins, that a condition on what the request
//! cannot tell passes as `assumed`, and that an unused grant needs a reason under `--strict-unused`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lifeboat_tests::lambda::{function_binary, LocalLambda};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::permissions::check;
use lifeboat_tests::{plans, repo_root};
use serde_json::Value;

const REGION: &str = "us-east-1";
const PLAN_BUCKET: &str = "plans";
/// A tick at which `examples/plans/small-stack.json` takes its cache snapshot (`0 3 * * *`).
const TICK: &str = "2026-12-07T03:00:00Z";

fn python() -> PathBuf {
    repo_root().join(".venv/bin/python3")
}

fn run(args: &[&str]) -> Output {
    Command::new(python())
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

/// The template deployed as `lb`: the stack document `deploy.py` prints, also written to `dir/stack.json`. (Not
/// `lifeboat_tests::stack::Stack::deploy`, which zips every function's build: this test runs one binary.)
fn deploy(moto: &Moto, dir: &Path) -> Value {
    // The code a deploy uploads is a placeholder: the test runs the function's binary itself, as Lambda would
    // run the uploaded one, and no role depends on the code.
    let artefacts = dir.join("artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let zips = run(&[
        "-c",
        "import sys; sys.path.insert(0, 'tests/stack'); from iam_findings import placeholder_zips; \
         placeholder_zips('infra/template.yaml', sys.argv[1])",
        artefacts.to_str().unwrap(),
    ]);
    assert!(zips.status.success(), "{}", String::from_utf8_lossy(&zips.stderr));
    let out = run(&[
        "tests/stack/deploy.py",
        "--endpoint",
        &moto.endpoint,
        "--region",
        REGION,
        "--template",
        "infra/template.yaml",
        "--stack",
        "lb",
        "--artefacts",
        artefacts.to_str().unwrap(),
        "--param",
        &format!("PlanBucket={PLAN_BUCKET}"),
        // The network a user's account has before the deploy (VpcId, SubnetIds, RestoreSubnetGroup).
        "--network",
        // moto's ElastiCache has no serverless caches.
        "--param",
        "ServerlessCaches=false",
        // The image the image functions name: this test runs a zip function's binary, so any digest does.
        "--param",
        "ImageDigest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert!(
        out.status.success(),
        "deploy.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("stack.json"), &out.stdout).unwrap();
    serde_json::from_slice(&out.stdout).expect("deploy.py prints the stack document")
}

/// The environment the stack gave `function`, with the role's name as the access key (so each request it makes
/// is attributed to that role in the recording) and moto as the endpoint.
fn environment(stack: &Value, function: &str, moto: &Moto) -> Vec<(String, String)> {
    let f = &stack["functions"][function];
    let role = &stack["roles"][f["role"].as_str().unwrap()]["name"];
    let mut env: Vec<(String, String)> = f["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            // The stack document keeps a number as moto returned it; Lambda hands every variable over as text.
            (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        })
        .collect();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", role.as_str().unwrap()),
        ("AWS_SECRET_ACCESS_KEY", "unused-by-moto"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    env
}

/// The input of the deployed schedule that targets `function`, at `time`.
fn schedule_input(stack: &Value, function: &str, time: &str) -> String {
    let arn = &stack["functions"][function]["arn"];
    let schedule = stack["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| &s["target"]["Arn"] == arn)
        .unwrap_or_else(|| panic!("no deployed schedule targets {function}"));
    schedule["target"]["Input"]
        .as_str()
        .unwrap()
        .replace("<aws.scheduler.scheduled-time>", time)
}

/// `stack` with `action` taken out of every statement of `role` (a statement left with no action goes).
fn without(stack: &Value, role: &str, action: &str) -> Value {
    let mut stack = stack.clone();
    let role = stack["roles"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|r| r["logical_id"] == role)
        .unwrap();
    for doc in role["policies"].as_object_mut().unwrap().values_mut() {
        let Some(statements) = doc["Statement"].as_array_mut() else {
            continue;
        };
        // A statement the template left out (`!If` ... `AWS::NoValue`) is a null in moto's document.
        for s in statements.iter_mut().filter(|s| s.is_object()) {
            match &mut s["Action"] {
                Value::Array(actions) => actions.retain(|a| a != action),
                Value::String(a) if a == action => s["Action"] = Value::Array(vec![]),
                _ => {}
            }
        }
        statements.retain(|s| s["Action"].as_array().is_none_or(|a| !a.is_empty()));
    }
    stack
}

#[tokio::test]
async fn a_deployed_functions_calls_pass_its_role_and_fail_without_an_action_it_used() {
    let moto = Moto::start_recording();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    plans::versioned_bucket(&s3, PLAN_BUCKET).await;
    s3.put_object()
        .bucket(PLAN_BUCKET)
        .key("lifeboat/plans.json")
        .body(plans::example("small-stack").into())
        .send()
        .await
        .unwrap();
    plans::instance(&aws_sdk_rds::Client::new(&config), "app-db", &[], 1).await;
    plans::cache(&aws_sdk_elasticache::Client::new(&config), "app-cache", &[]).await;

    let dir = tempfile::tempdir().unwrap();
    let stack = deploy(&moto, dir.path());
    // Only the function's own calls are checked; the deploy and this set-up are not among them anyway (their
    // access keys are no role's name), but they would make the recording large.
    moto.reset_recording();

    let function = "SnapshotFunction";
    let env = environment(&stack, function, &moto);
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let event = dir.path().join("event.json");
    std::fs::write(&event, schedule_input(&stack, function, TICK)).unwrap();
    let mut lambda = LocalLambda::start("snapshot", &function_binary("snapshot"), &env);
    let result = lambda
        .invoke(&event)
        .unwrap_or_else(|e| panic!("the scheduled run failed: {e}"));
    assert_eq!(result["caches"][0]["outcome"], "created", "{result}");
    drop(lambda);

    let recording = moto.recording().unwrap();
    let (code, report) = check(recording, &dir.path().join("stack.json"), &[]);
    assert_eq!(code, 0, "the deployed role allows every call:\n{report}");
    // The report, unused grants and their reasons included, is this test's output.
    println!("{report}");
    let line = "allowed\tSnapshotFunction\telasticache:CreateSnapshot\t\
                arn:aws:elasticache:us-east-1:123456789012:cluster:app-cache\tby SnapshotCaches";
    assert!(report.contains(line), "{report}");
    // Tag-on-create is checked as IAM does: the tags a snapshot is created with, against the tag keys allowed.
    assert!(
        report.contains("allowed\tSnapshotFunction\telasticache:AddTagsToResource\t"),
        "{report}"
    );
    // The converse: each granted action no call used, with the reason it is kept.
    assert!(
        report.contains("unused\tSnapshotRole\trds:CopyDBSnapshot\t"),
        "{report}"
    );
    assert!(
        !report.contains("no reason given"),
        "an unused grant of a function that ran has no reason in infra/permissions-unused.json:\n{report}"
    );
    // Behind --strict-unused, an unused grant without a reason fails the check.
    let (code, report) = check(recording, &dir.path().join("stack.json"), &["--strict-unused"]);
    assert_eq!(code, 0, "{report}");
    let no_reasons = dir.path().join("no-reasons.json");
    std::fs::write(&no_reasons, "{}").unwrap();
    let (code, report) = check(
        recording,
        &dir.path().join("stack.json"),
        &["--strict-unused", "--reasons", no_reasons.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("unused\tSnapshotRole\trds:CopyDBSnapshot\t"),
        "{report}"
    );
    assert!(report.contains("no reason given"), "{report}");

    let narrowed = dir.path().join("narrowed.json");
    let stack_without = without(&stack, "SnapshotRole", "elasticache:CreateSnapshot");
    std::fs::write(&narrowed, stack_without.to_string()).unwrap();
    let (code, report) = check(recording, &narrowed, &[]);
    assert_eq!(code, 1, "{report}");
    let line = "not-allowed\tSnapshotFunction\telasticache:CreateSnapshot\t\
                arn:aws:elasticache:us-east-1:123456789012:cluster:app-cache\tno statement allows it";
    assert!(report.contains(line), "{report}");

    // Conditions are evaluated on the request's own values: with one of the tag keys the snapshot is created with
    // no longer allowed, tag-on-create is refused (ForAllValues:StringEquals on aws:TagKeys).
    let mut fewer_keys = stack.clone();
    let keys = &mut statement(&mut fewer_keys, "SnapshotRole", "TagOwnCacheSnapshots")["Condition"]
        ["ForAllValues:StringEquals"]["aws:TagKeys"];
    keys.as_array_mut().unwrap().retain(|k| k != "lifeboat:managed");
    let (code, report) = check_stack(recording, dir.path(), &fewer_keys);
    assert_eq!(code, 1, "{report}");
    let line = "not-allowed\tSnapshotFunction\telasticache:AddTagsToResource\t\
                arn:aws:elasticache:us-east-1:123456789012:snapshot:lifeboat-app-cache-20261207-0300\t";
    assert!(report.contains(line), "{report}");

    // An explicit Deny wins over the Allow.
    let mut denied = stack.clone();
    statements(&mut denied, "SnapshotRole").push(serde_json::json!(
        {"Sid": "NoCacheSnapshots", "Effect": "Deny", "Action": "elasticache:Create*", "Resource": "*"}));
    let (code, report) = check_stack(recording, dir.path(), &denied);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("denied\tSnapshotFunction\telasticache:CreateSnapshot\t"),
        "{report}"
    );
    assert!(
        report.contains("explicit Deny inline:snapshot NoCacheSnapshots"),
        "{report}"
    );

    // A condition on a key the request cannot tell (the resource's tags) neither grants nor refuses: the call
    // passes as `assumed`, and the report names the key.
    let mut by_tag = stack.clone();
    statement(&mut by_tag, "SnapshotRole", "SnapshotCaches")["Condition"] =
        serde_json::json!({"StringEquals": {"aws:ResourceTag/team": "payments"}});
    let (code, report) = check_stack(recording, dir.path(), &by_tag);
    assert_eq!(code, 0, "{report}");
    let line = "assumed\tSnapshotFunction\telasticache:CreateSnapshot\t\
                arn:aws:elasticache:us-east-1:123456789012:cluster:app-cache\t\
                only if unknown: SnapshotCaches: StringEquals aws:ResourceTag/team";
    assert!(report.contains(line), "{report}");

    // A bucket's policy (deploy.py keeps it in the document) is judged with the function's role as the principal:
    // its Deny naming the role wins, and its Allow naming the role allows what the role's own policy does not.
    let role_arn = stack["functions"][function]["role"].clone();
    let mut bucket_denies = stack.clone();
    bucket_denies["bucket_policies"][PLAN_BUCKET] = serde_json::json!({"Statement": [{"Sid": "NoListing",
        "Effect": "Deny", "Principal": "*", "Action": "s3:ListBucketVersions", "Resource": "*",
        "Condition": {"ArnEquals": {"aws:PrincipalArn": role_arn}}}]});
    let (code, report) = check_stack(recording, dir.path(), &bucket_denies);
    assert_eq!(code, 1, "{report}");
    let line = "denied\tSnapshotFunction\ts3:ListBucketVersions\tarn:aws:s3:::plans\t\
                explicit Deny bucket policy of plans NoListing";
    assert!(report.contains(line), "{report}");
    let mut bucket_allows = without(&stack, "SnapshotRole", "s3:GetObjectVersion");
    bucket_allows["bucket_policies"][PLAN_BUCKET] = serde_json::json!({"Statement": [{"Sid": "ReadPlans",
        "Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "s3:GetObjectVersion",
        "Resource": "arn:aws:s3:::plans/*"}]});
    let (code, report) = check_stack(recording, dir.path(), &bucket_allows);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains(
            "allowed\tSnapshotFunction\ts3:GetObjectVersion\tarn:aws:s3:::plans/lifeboat/plans.json\t\
                         by bucket policy of plans ReadPlans"
        ),
        "{report}"
    );
}

/// The statements of `role`'s one inline policy.
fn statements<'a>(stack: &'a mut Value, logical_id: &str) -> &'a mut Vec<Value> {
    let role = stack["roles"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|r| r["logical_id"] == logical_id)
        .unwrap();
    let policies = role["policies"].as_object_mut().unwrap();
    assert_eq!(policies.len(), 1, "{logical_id} has one inline policy");
    policies.values_mut().next().unwrap()["Statement"]
        .as_array_mut()
        .unwrap()
}

/// The statement `sid` of `role`.
fn statement<'a>(stack: &'a mut Value, role: &str, sid: &str) -> &'a mut Value {
    statements(stack, role)
        .iter_mut()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("{role} has no statement {sid}"))
}

/// [`check`] against `stack` (a changed copy of the deployed one).
fn check_stack(recording: &Path, dir: &Path, stack: &Value) -> (i32, String) {
    let path = dir.join("changed-stack.json");
    std::fs::write(&path, stack.to_string()).unwrap();
    check(recording, &path, &[])
}
