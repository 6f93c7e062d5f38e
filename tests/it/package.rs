//! `make package` and the template agree: every artefact `infra/template.yaml` points a deploy at (each zip
//! function's `CodeUri`, the layer's `ContentUri`, the image functions' entry points) is what the packaging step
//! writes, and nothing it writes is unused. The package is built for this host from the debug binaries the
//! workspace's tests already built (`PROFILE=debug`): the point is the layout and the references, not a release
//! build (`make package` builds those with cargo lambda for arm64 or x86_64).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lifeboat_tests::lambda::function_binary;
use lifeboat_tests::repo_root;

/// The values of every `key: ../dist/...` line of the template, relative to dist/.
fn dist_references(template: &str, key: &str) -> BTreeSet<String> {
    template
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}: ../dist/")))
        .map(str::to_owned)
        .collect()
}

/// Each entry of a zip: its name, Unix mode and contents (read by Python's zipfile, as Lambda's unzip reads it).
fn zip_entries(zip: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let script = "import sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  for i in z.infolist():\n    \
                  sys.stdout.buffer.write(b'%s %o %d\\n' % (i.filename.encode(), i.external_attr >> 16, i.file_size))\n";
    let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(zip)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let extract = |name: &str| {
        let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .args([
                "-c",
                "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
            ])
            .arg(zip)
            .arg(name)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut parts = l.split(' ');
            let name = parts.next().unwrap().to_owned();
            let mode = u32::from_str_radix(parts.next().unwrap(), 8).unwrap();
            let data = extract(&name);
            (name, mode, data)
        })
        .collect()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn make_package_writes_exactly_what_the_template_deploys() {
    let zips = ["snapshot", "rotate", "monitor", "notify"];
    let image = ["export", "restore", "restore-test"];
    // The debug binaries `cargo test --workspace` built beside this test (target/debug/<name>).
    let target_dir: PathBuf = function_binary("snapshot")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    for name in zips.iter().chain(&image) {
        function_binary(name);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let make = std::process::Command::new("make")
        .current_dir(repo_root())
        .args(["--no-print-directory", "package", "PROFILE=debug"])
        .arg(format!("ARCH={}", host_arch()))
        .arg(format!("PACKAGE_DIR={}", out.display()))
        .arg(format!("RDS_CA={}", ca.display()))
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap();
    assert!(
        make.status.success(),
        "make package failed:\n{}\n{}",
        String::from_utf8_lossy(&make.stdout),
        String::from_utf8_lossy(&make.stderr)
    );

    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    // Zips: every CodeUri the template names is written, each with exactly one executable `bootstrap` at its root
    // that is the function's own binary; no zip is written that the template does not deploy.
    let code = dist_references(&template, "CodeUri");
    assert_eq!(
        code,
        zips.iter().map(|z| format!("{z}.zip")).collect::<BTreeSet<_>>(),
        "the template's CodeUris"
    );
    let written: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = code.iter().cloned().chain(["image".into(), "layers".into()]).collect();
    assert_eq!(written, expected, "what make package wrote");
    for name in zips {
        let entries = zip_entries(&out.join(format!("{name}.zip")));
        assert_eq!(entries.len(), 1, "{name}.zip holds one file");
        let (file, mode, data) = &entries[0];
        assert_eq!(file, "bootstrap", "{name}.zip");
        assert_eq!(mode & 0o170_000, 0o100_000, "{name}.zip: bootstrap is a regular file");
        assert_eq!(mode & 0o111, 0o111, "{name}.zip: bootstrap is executable by all");
        assert!(
            *data == std::fs::read(function_binary(name)).unwrap(),
            "{name}.zip: bootstrap is not the {name} binary"
        );
    }

    // The layer: the template's ContentUri is the directory holding the bundle where rotate reads it.
    assert_eq!(
        dist_references(&template, "ContentUri"),
        BTreeSet::from(["layers/".to_owned()])
    );
    assert_eq!(
        std::fs::read(out.join("layers/rds-ca/global-bundle.pem")).unwrap(),
        std::fs::read(&ca).unwrap()
    );

    // The image's build context: the Dockerfile, and every file its COPY lines take from the context, which are
    // the binaries the image functions' entry points run.
    let dockerfile = std::fs::read_to_string(out.join("image/Dockerfile")).unwrap();
    assert_eq!(
        dockerfile,
        std::fs::read_to_string(repo_root().join("infra/pg-tools.Dockerfile")).unwrap()
    );
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    assert_eq!(copied, image, "the image copies its three binaries from its context");
    for name in image {
        let path = out.join("image").join(name);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(function_binary(name)).unwrap(),
            "image/{name}"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o111, 0o111);
    }
    let entry_points: BTreeSet<&str> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("EntryPoint: [/usr/local/bin/"))
        .filter_map(|l| l.strip_suffix(']'))
        .chain(
            dockerfile
                .lines()
                .filter_map(|l| l.strip_prefix("ENTRYPOINT [\"/usr/local/bin/"))
                .filter_map(|l| l.strip_suffix("\"]")),
        )
        .collect();
    assert_eq!(
        entry_points,
        BTreeSet::from(image),
        "what the image functions and tasks run"
    );
    // Every image function and task runs the one image make deploy pushed, by digest.
    let image_uri = "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/${ImageRepository}@${ImageDigest}";
    assert_eq!(template.matches(&format!("ImageUri: !Sub {image_uri}")).count(), 3);
    assert_eq!(template.matches(&format!("Image: !Sub {image_uri}")).count(), 2);
}

/// The deploy path has no beta feature and no second deploy: no SAM beta build method or flag, and no parameter
/// that must be filled in after a first deploy.
#[test]
fn the_deploy_needs_no_beta_feature_and_no_second_deploy() {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    let samconfig = std::fs::read_to_string(repo_root().join("samconfig.toml")).unwrap();
    assert!(
        !template.contains("BuildMethod:"),
        "sam build is not part of the deploy"
    );
    assert!(!samconfig.contains("beta_features"), "{samconfig}");
    assert!(
        !template.contains("ExportTaskImageUri"),
        "the image comes with the first deploy"
    );
    let makefile = std::fs::read_to_string(repo_root().join("Makefile")).unwrap();
    assert!(makefile.contains("\ndeploy: package\n"), "make deploy packages first");
}

/// `make deploy` after the first: the answers `sam deploy --guided` saved are passed again exactly as SAM wrote
/// them (JSON values with escaped quotes included), without the build's parameters, which each deploy sets afresh.
#[test]
fn a_later_deploy_reuses_the_saved_answers_and_replaces_only_the_builds() {
    let dir = tempfile::tempdir().unwrap();
    let samconfig = dir.path().join("samconfig.toml");
    let saved = r#"PlanBucket=\"acme-plans\" SubnetIds=\"subnet-1,subnet-2\" RestoreChecks=\"[{\\\"name\\\": \\\"users\\\", \\\"sql\\\": \\\"select count(*) > 0 from users\\\"}]\" ImageDigest=\"sha256:0000\" Architecture=\"arm64\" ImageRepository=\"old\""#;
    std::fs::write(
        &samconfig,
        format!("version = 0.1\n[staging.deploy.parameters]\nparameter_overrides = \"{saved}\"\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new("python3")
            .arg(repo_root().join("infra/package.py"))
            .args(args)
            .output()
            .unwrap()
    };
    let path = samconfig.to_str().unwrap();
    let out = run(&["overrides", path, "staging"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        r#"PlanBucket="acme-plans" SubnetIds="subnet-1,subnet-2" RestoreChecks="[{\"name\": \"users\", \"sql\": \"select count(*) > 0 from users\"}]""#
    );
    assert_eq!(run(&["overrides", path, "staging", "--has"]).status.code(), Some(0));
    assert_eq!(
        run(&["overrides", path, "production", "--has"]).status.code(),
        Some(1),
        "no saved answers: the first deploy is guided"
    );
    let missing = dir.path().join("none.toml");
    assert_eq!(
        run(&["overrides", missing.to_str().unwrap(), "default", "--has"])
            .status
            .code(),
        Some(1)
    );
}
