//! TLS for the registry client: rustls (no system OpenSSL is linked, deny.toml), trusting the
//! system's CA bundle plus, per registry, the CA certificates an operator puts in
//! `certs_dir/<host[:port]>/*.crt` (the `certs.d` layout of containerd and podman).

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Debian's bundle of the system's trusted CAs (ca-certificates).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const MAX_PEM_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA file {}: {source}", path.display())]
    Read { path: PathBuf, source: crate::atomic::ReadError },
    #[error("CA file {} holds no usable PEM certificate ({what}); put the registry's CA certificate there in PEM form", path.display())]
    Pem { path: PathBuf, what: String },
}

/// The client configuration for `host`: system CAs, plus `certs_dir/host/*.crt`.
pub fn client_config(certs_dir: &Path, host: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    if Path::new(SYSTEM_BUNDLE).exists() {
        // A broken system bundle leaves certs_dir to trust; it is not this registry's fault.
        let _ = add_pem(&mut roots, Path::new(SYSTEM_BUNDLE));
    }
    if !certs_dir.as_os_str().is_empty() {
        let dir = certs_dir.join(host);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect();
            files.sort();
            for f in files {
                add_pem(&mut roots, &f)?;
            }
        }
    }
    // ring, the provider ureq's rustls already links (aws-lc-rs would add a C build of AWS-LC).
    // rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which registries
    // do not require.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn add_pem(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), TlsError> {
    let bytes = crate::atomic::read_bounded(path, MAX_PEM_BYTES)
        .map_err(|source| TlsError::Read { path: path.into(), source })?;
    let mut added = 0;
    for cert in rustls_pemfile::certs(&mut bytes.as_slice()) {
        let cert = cert.map_err(|e| TlsError::Pem { path: path.into(), what: e.to_string() })?;
        if roots.add(cert).is_ok() {
            added += 1;
        }
    }
    if added == 0 {
        return Err(TlsError::Pem { path: path.into(), what: "no CERTIFICATE block".into() });
    }
    Ok(())
}
