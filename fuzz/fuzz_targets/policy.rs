//! The node configuration (docs/config.md): TOML text up to the first NUL byte (non-UTF-8 text
//! is rejected, as `Config::from_file` does), then image names, one per NUL-separated chunk, that
//! the rules and exemptions are matched against with a few fixed ones. Never panics; a config
//! that loads keeps the invariants the rest of rootseal relies on.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::config::Config;
use rootseal::policy;
use std::collections::HashMap;
use std::path::Path;

const IMAGES: [&str; 6] = [
    "registry.example/prod/team/app:1.4",
    "registry.example/app:1",
    "registry.k8s.io/pause:3.9",
    "docker.io/library/nginx:1.27",
    "registry.dev.example/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "",
];

fuzz_target!(|data: &[u8]| {
    let mut chunks = data.split(|&b| b == 0);
    let Ok(text) = std::str::from_utf8(chunks.next().unwrap_or_default()) else { return };
    let Ok(cfg) = Config::parse(text, Path::new("/etc/rootseal/config.toml")) else { return };

    // What loading validated, and what the hook then takes for granted.
    let deadline = cfg.hook.deadline();
    assert!(deadline.as_millis() >= 100 && deadline.as_secs() <= 600);
    assert!(cfg.hook.min_signers >= 1);
    // The hook and the monitor add these to `Instant::now()` (hook.rs, monitor.rs): a duration
    // that loads must not overflow that.
    let now = std::time::Instant::now();
    for (key, d) in [
        ("[hook] deadline", deadline),
        ("[monitor] interval", cfg.monitor.interval()),
        ("[monitor] scan_deadline", cfg.monitor.scan_deadline()),
    ] {
        assert!(now.checked_add(d).is_some(), "{key} = {d:?} loads, but Instant::now() + it overflows");
    }
    for d in [&cfg.trust_dir, &cfg.seal_dir, &cfg.state_dir, &cfg.cache_dir] {
        assert!(d.is_absolute());
    }
    assert!(cfg.runtime.hook_stage == "createRuntime" || cfg.runtime.hook_stage == "prestart");
    for r in &cfg.rules {
        assert!(!r.images.is_empty() && r.min_signers != Some(0));
    }
    let exemptions = cfg.exemptions();
    for e in &exemptions {
        assert!(!e.images.is_empty() || !e.annotations.is_empty(), "exemption {:?} matches nothing", e.name);
    }

    // Rule and exemption selection.
    let extra: Vec<String> = chunks.take(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let sandbox = HashMap::from([
        ("io.kubernetes.cri.container-type".to_string(), "sandbox".to_string()),
        ("io.kubernetes.cri-o.ContainerType".to_string(), "sandbox".to_string()),
    ]);
    assert!(policy::rule(&cfg.rules, None).is_none());
    for image in IMAGES.iter().copied().chain(extra.iter().map(String::as_str)) {
        if let Some(r) = policy::rule(&cfg.rules, Some(image)) {
            // The first match wins.
            let first = cfg.rules.iter().position(|x| x.images.iter().any(|p| rootseal::glob::matches(p, image)));
            assert_eq!(first.map(|i| &cfg.rules[i].name), Some(&r.name));
        }
        let annotations = HashMap::from([("io.kubernetes.cri.image-name".to_string(), image.to_string())]);
        let named = policy::image_name(&annotations);
        let _ = policy::exemption(&exemptions, named.as_deref(), &annotations);
        let _ = policy::exemption(&exemptions, Some(image), &sandbox);
    }
    if cfg.exempt.is_none() {
        assert!(policy::exemption(&exemptions, None, &sandbox).is_some(), "the default exemptions miss a sandbox");
    }
});
