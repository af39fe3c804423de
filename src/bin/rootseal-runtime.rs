//! `rootseal-runtime`: runc with the rootseal hooks injected. See src/hook/runtime.rs.

#![forbid(unsafe_code)]

use rootseal::runtime;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let inv = runtime::parse_args(&args);
    let explicit = std::env::var_os(rootseal::config::ENV_VAR).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let result = match rootseal::config::Config::load(None) {
        Ok((cfg, path)) => runtime::prepare(&inv, &cfg, explicit.as_deref().or(path.as_deref())),
        // A broken config must not stop containerd from deleting, killing or inspecting
        // containers: only create and run need it.
        Err(e) if !runtime::modifies(&inv) => {
            eprintln!(
                "rootseal-runtime: warning: {e}; passing {:?} to runc unchanged",
                inv.verb.as_deref().unwrap_or("")
            );
            runtime::resolve_runtime(&rootseal::config::RuntimeSettings::default().runtime)
        }
        Err(e) => Err(e.into()),
    };
    let err = match result {
        Ok(real) => runtime::exec(&real, &args),
        Err(e) => e,
    };
    runtime::report(&inv, &err.to_string());
    ExitCode::from(1)
}
