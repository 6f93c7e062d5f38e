//! The dependency graph's promises that no linter checks: the workspace's `rust-version` is one the locked
//! dependencies build with (no lower than the newest `rust-version` any of them declares), and our own code uses
//! one `sha2`.

use std::process::Command;

use lifeboat_tests::repo_root;

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args(["metadata", "--locked", "--format-version", "1"])
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn version(v: &str) -> Vec<u32> {
    v.split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("{v} is not a version")))
        .collect()
}

#[test]
fn rust_version_is_one_the_locked_dependencies_build_with() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let ours: Vec<&serde_json::Value> = packages.iter().filter(|p| p["source"].is_null()).collect();
    assert!(ours.len() >= 8, "found only {} workspace members", ours.len());
    let declared = ours[0]["rust_version"]
        .as_str()
        .expect("the workspace declares a rust-version");
    for p in &ours {
        assert_eq!(
            p["rust_version"].as_str(),
            Some(declared),
            "{} has its own rust-version",
            p["name"]
        );
    }
    let (newest, by) = packages
        .iter()
        .filter(|p| !p["source"].is_null())
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?.to_owned())))
        .max()
        .expect("some dependency declares a rust-version");
    assert!(
        version(declared) >= newest,
        "the workspace says rust-version {declared}, but {by} needs {newest:?}: raise it in Cargo.toml"
    );
}

#[test]
fn our_crates_use_one_sha2() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let mut requirements = std::collections::BTreeSet::new();
    for p in packages.iter().filter(|p| p["source"].is_null()) {
        for d in p["dependencies"].as_array().expect("dependencies") {
            if d["name"] == "sha2" {
                requirements.insert(d["req"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    assert_eq!(
        requirements.len(),
        1,
        "our crates ask for several sha2 versions: {requirements:?}"
    );
}
