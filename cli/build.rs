//! Writes the shell completions and the man pages into OUT_DIR from the same `clap` definition the binary parses
//! with (`src/args.rs`, included here), and a `generated.rs` that embeds them, so `lifeboat completions <shell>`
//! and `lifeboat man` print what this build accepts: never a stale copy kept in the repository.

#![allow(dead_code)]

#[path = "src/args.rs"]
mod args;

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=src/args.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let mut generated = String::from("// Written by build.rs from src/args.rs.\n");

    generated.push_str("/// (shell, completion script)\npub const COMPLETIONS: &[(&str, &str)] = &[\n");
    for shell in args::Shell::ALL {
        let mut cmd = args::command();
        let mut script = Vec::new();
        match shell {
            args::Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "lifeboat", &mut script),
            args::Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "lifeboat", &mut script),
            args::Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "lifeboat", &mut script),
            args::Shell::Elvish => {
                clap_complete::generate(clap_complete::Shell::Elvish, &mut cmd, "lifeboat", &mut script)
            }
            args::Shell::Powershell => {
                clap_complete::generate(clap_complete::Shell::PowerShell, &mut cmd, "lifeboat", &mut script)
            }
        }
        let file = write(&out, &format!("lifeboat.{}", shell.name()), &script)?;
        generated.push_str(&format!("    ({:?}, include_str!({:?})),\n", shell.name(), file));
    }
    generated.push_str("];\n");

    generated.push_str(
        "/// (command, man page); \"lifeboat\" is the tool's own page\npub const MAN_PAGES: &[(&str, &str)] = &[\n",
    );
    let mut cmd = args::command();
    cmd.build();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    let file = write(&out, "lifeboat.1", &page)?;
    generated.push_str(&format!("    (\"lifeboat\", include_str!({file:?})),\n"));
    for sub in cmd.get_subcommands() {
        let name = sub.get_name().to_owned();
        if name == "help" {
            continue;
        }
        // A page name outlives the definition it renames (clap keeps `&'static str` names); a build script may leak.
        let full: &'static str = Box::leak(format!("lifeboat-{name}").into_boxed_str());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone().name(full)).render(&mut page)?;
        let file = write(&out, &format!("{full}.1"), &page)?;
        generated.push_str(&format!("    ({name:?}, include_str!({file:?})),\n"));
    }
    generated.push_str("];\n");
    std::fs::write(out.join("generated.rs"), generated)?;
    Ok(())
}

fn write(dir: &Path, name: &str, body: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    let path = dir.join(name);
    std::fs::write(&path, body)?;
    Ok(path.to_str().ok_or("OUT_DIR is not UTF-8")?.to_owned())
}
