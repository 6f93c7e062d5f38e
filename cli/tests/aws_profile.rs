//! `--profile` is the AWS named profile, as a process: a temporary AWS config file holds a default profile and a
//! named one with another region, endpoint and key, and a small HTTP listener stands in for S3 and records
//! what reaches it. The request's signature says which region and key the tool used. The listener's answers
//! (404, 403) also reach the "not found" and "refused" exit codes, in text and in JSON.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// A listener on a free port that answers every request with `status` (or what `answer` makes of the request's
/// head) and keeps each request's head.
struct FakeS3 {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeS3 {
    fn start(status: &'static str) -> Self {
        Self::answering(move |_| format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    }

    fn answering(answer: impl Fn(&str) -> String + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let _ = stream.write_all(answer(&head).as_bytes());
                seen.lock().unwrap().push(head);
            }
        });
        FakeS3 { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// An AWS config whose default profile points nowhere useful and whose `lifeboat-test` profile points at `port`.
fn aws_config(port: u16) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("config");
    std::fs::write(
        &path,
        format!(
            "[default]\nregion = us-west-2\nendpoint_url = http://127.0.0.1:9\naws_access_key_id = AKIDDEFAULT\n\
             aws_secret_access_key = default-secret\n\n\
             [profile lifeboat-test]\nregion = eu-north-1\nendpoint_url = http://127.0.0.1:{port}\n\
             aws_access_key_id = AKIDNAMEDPROFILE\naws_secret_access_key = profile-secret\n"
        ),
    )
    .unwrap();
    (dir, path)
}

mod tempdir {
    /// A directory removed when dropped (the crate takes no dev-dependency for it).
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "lifeboat-cli-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `lifeboat` with nothing of the caller's AWS environment: only the given config file (and `extra` variables).
fn lifeboat(config: &PathBuf, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", config.parent().unwrap())
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", config.with_file_name("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("LIFEBOAT_BUCKET", "lifeboat-backups");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn signed_by_the_named_profile(request: &str) -> bool {
    request.contains("Credential=AKIDNAMEDPROFILE/") && request.contains("/eu-north-1/s3/aws4_request")
}

#[test]
fn the_profile_option_and_aws_profile_choose_the_named_profile_for_region_endpoint_and_key() {
    let s3 = FakeS3::start("404 Not Found");
    let (_dir, config) = aws_config(s3.port);

    let out = lifeboat(&config, &["exports", "app-prod", "--profile", "lifeboat-test"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = s3.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("HEAD /lifeboat-backups"), "{}", seen[0]);
    assert!(signed_by_the_named_profile(&seen[0]), "{}", seen[0]);

    // AWS_PROFILE works as usual, and --profile (before the command too) wins over it.
    let out = lifeboat(&config, &["exports", "app-prod"], &[("AWS_PROFILE", "lifeboat-test")]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let out = lifeboat(
        &config,
        &["--profile", "lifeboat-test", "exports", "app-prod"],
        &[("AWS_PROFILE", "default")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = s3.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|r| signed_by_the_named_profile(r)), "{seen:?}");
}

#[test]
fn a_missing_bucket_is_not_found_and_a_denied_one_refused_also_in_json() {
    let missing = FakeS3::start("404 Not Found");
    let (_dir, config) = aws_config(missing.port);
    let args = ["--json", "--profile", "lifeboat-test", "exports", "app-prod"];
    let out = lifeboat(&config, &args, &[]);
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "not-found");
    assert_eq!(doc["error"]["exit_code"], 3);
    assert_eq!(
        doc["error"]["message"],
        "bucket lifeboat-backups does not exist (or is in another account)"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lifeboat: bucket lifeboat-backups does not exist"),
        "{stderr}"
    );

    let denied = FakeS3::start("403 Forbidden");
    let (_dir, config) = aws_config(denied.port);
    let out = lifeboat(&config, &args, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "refused");
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("s3:ListBucket"),
        "{doc}"
    );
    // Without --json: the message on stderr, nothing on stdout.
    let out = lifeboat(&config, &args[1..], &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_refusal_after_the_bucket_probe_is_refused_by_its_error_code() {
    // The bucket is there (HeadBucket answers 200), but listing it is denied with S3's own error document: the
    // tool classes the failure by the code S3 sent, not by its words.
    let s3 = FakeS3::answering(|head| {
        if head.starts_with("HEAD ") {
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        } else {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
                        <Message>Access Denied</Message><RequestId>R1</RequestId></Error>";
            format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        }
    });
    let (_dir, config) = aws_config(s3.port);
    let out = lifeboat(
        &config,
        &["--json", "--profile", "lifeboat-test", "exports", "app-prod"],
        &[],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(4), "{doc}");
    assert_eq!(doc["error"]["kind"], "refused");
    let requests = s3.requests();
    assert!(requests.iter().any(|r| r.starts_with("HEAD ")), "{requests:?}");
    assert!(requests.iter().any(|r| r.starts_with("GET ")), "{requests:?}");
}

#[test]
fn an_aws_profile_that_is_not_defined_fails_with_a_hint_at_the_export_profile_option() {
    let s3 = FakeS3::start("404 Not Found");
    let (_dir, config) = aws_config(s3.port);
    // `--profile full` meant the export profile before the rename; there is no AWS profile of that name.
    let out = lifeboat(&config, &["exports", "app-prod", "--profile", "full"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the export profile is --export-profile"), "{stderr}");
    assert!(
        s3.requests().is_empty(),
        "nothing was sent with another profile's settings"
    );
}
