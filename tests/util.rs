//! Test harness shared by tests/ and integration/: a private temp directory per test with its
//! own config, trust store, seal store and state, and a runner for the real binary.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new().prefix("rootseal-test-").tempdir().expect("tempdir");
        // The trust rule refuses group/other-writable ancestors of the store only at the store
        // itself, but keep the whole tree tidy anyway.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = Env { tmp };
        env.write_config("");
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("config.toml")
    }

    /// Writes the test config: every directory inside the temp dir, plus `extra` TOML.
    pub fn write_config(&self, extra: &str) {
        let d = self.tmp.path().display();
        let text = format!(
            "trust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n{extra}\n[alerts]\nsyslog_socket = \"\"\nevents_file = \"{d}/events.jsonl\"\n"
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// A `rootseal` command with this test's config.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(bin());
        c.args(args).env("ROOTSEAL_CONFIG", self.config_path()).stdin(Stdio::null());
        c
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).output().expect("run rootseal")
    }

    /// Runs and asserts the exit code; returns (stdout, stderr).
    pub fn expect<I, S>(&self, code: i32, args: I) -> (String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.run(&args);
        let (so, se) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert_eq!(out.status.code(), Some(code), "rootseal {args:?}\nstdout: {so}\nstderr: {se}");
        (so, se)
    }

    /// `rootseal seal ROOT --key KEY --out OUT [extra...]`, asserting success; returns
    /// (stdout, stderr).
    pub fn seal(&self, root: &Path, key: &Path, out: &Path, extra: &[&str]) -> (String, String) {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("seal"),
            root.as_os_str(),
            OsStr::new("--key"),
            key.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.expect(0, args)
    }

    /// `rootseal verify ROOT --seal SEAL --key PUB [extra...]`, asserting the exit code.
    pub fn verify(&self, code: i32, root: &Path, seal: &Path, public: &Path, extra: &[&str]) -> (String, String) {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("verify"),
            root.as_os_str(),
            OsStr::new("--seal"),
            seal.as_os_str(),
            OsStr::new("--key"),
            public.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.expect(code, args)
    }

    /// `rootseal verify ROOT --seal SEAL --trust-dir DIR`, asserting the exit code.
    pub fn verify_trusted(&self, code: i32, root: &Path, seal: &Path, trust_dir: &Path) -> (String, String) {
        self.expect(
            code,
            [
                OsStr::new("verify"),
                root.as_os_str(),
                OsStr::new("--seal"),
                seal.as_os_str(),
                OsStr::new("--trust-dir"),
                trust_dir.as_os_str(),
            ],
        )
    }

    /// keygen into the temp dir; returns (private, public) paths.
    pub fn keygen(&self, name: &str) -> (PathBuf, PathBuf) {
        let prefix = self.path(name);
        self.expect(0, [OsStr::new("keygen"), OsStr::new("--out"), prefix.as_os_str()]);
        (self.path(&format!("{name}.key")), self.path(&format!("{name}.pub")))
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rootseal"))
}

/// A small tree that looks like an image: dirs, files, a setuid binary, a symlink.
pub fn small_tree(root: &Path) {
    for d in ["bin", "etc", "usr/lib", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("bin/app"), b"#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(root.join("bin/app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("bin/su"), b"setuid").unwrap();
    std::fs::set_permissions(root.join("bin/su"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("usr/lib/libx.so"), vec![0x5a; 100_000]).unwrap();
    std::os::unix::fs::symlink("../usr/lib/libx.so", root.join("bin/libx.so")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
}

/// Sets an extended attribute without following symlinks.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a value buffer of the given length.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(rc, 0, "setxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
}

pub fn remove_xattr(path: &Path, name: &str) {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings.
    let rc = unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) };
    assert_eq!(rc, 0, "removexattr {name}: {}", std::io::Error::last_os_error());
}

/// A VFS_CAP_REVISION_2 capability xattr granting CAP_NET_BIND_SERVICE (as setcap writes it).
pub fn cap_net_bind() -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

/// Runs a command, asserting success, returning stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lists every file name under `dir` (recursively), for "nothing was left behind" checks.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn rec(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rec(base, &p, out);
                }
            }
        }
    }
    rec(dir, dir, &mut out);
    out.sort();
    out
}
