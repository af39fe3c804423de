//! README.md's five-minute quick start, run exactly as written (its `sh` blocks, in order, with
//! bash -e), with the built `rootseal` and `rootseal-runtime` first on PATH: a sealed image runs,
//! the tampered one is blocked, the event says so.

use std::path::Path;
use std::process::Command;

fn quick_start_script() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Five-minute quick start").expect("the README has a quick start");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map(|i| i + 3).unwrap_or(section.len())];
    let mut script = String::new();
    let mut inside = false;
    for line in section.lines() {
        match (inside, line.trim_end()) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, l) => {
                script.push_str(l);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(script.contains("rootseal-runtime run"), "{script}");
    script
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let bin = Path::new(env!("CARGO_BIN_EXE_rootseal")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["-k", "5", "300", "bash", "-e", "-c"])
        .arg(quick_start_script())
        .current_dir(work.path())
        .env("PATH", path)
        .env("TMPDIR", work.path())
        .env_remove("ROOTSEAL_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the quick start failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("hello from a sealed image"), "app-1 ran: {stdout}\n{stderr}");
    assert!(stdout.contains("app-2 was blocked"), "{stdout}\n{stderr}");
    assert!(stderr.contains("rootseal: blocked container app-2: /etc/motd content differs from seal"), "{stderr}");
    let event = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(event).unwrap_or_else(|e| panic!("{e}: {event:?}"));
    assert_eq!(v["event"], "blocked", "{v}");
}
