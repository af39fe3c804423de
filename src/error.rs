//! The crate's top-level error: every module's error, collected, with the exit code each maps
//! to (docs: 1 = a verification verdict said no, 2 = usage, config or I/O).

use crate::{atomic, config, image, install, keys, store, trust, verify, walk};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Walk(#[from] walk::WalkError),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Install(#[from] install::InstallError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Rollback(#[from] crate::rollback::RollbackError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error("cannot write: {0}")]
    Write(atomic::WriteError),
    #[error(transparent)]
    Read(atomic::ReadError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("{0}")]
    Usage(String),
    /// A verdict, not a failure of rootseal: exit 1.
    #[error("{what}: {why}")]
    Rejected { what: String, why: verify::Rejection },
    /// A scan attestation or VEX document refused (untrusted, malformed, stale): exit 1.
    #[error("{what}: {why}")]
    AttestationRefused { what: String, why: crate::attest::AttestError },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Rejected { .. } | Error::AttestationRefused { .. } => 1,
            _ => 2,
        }
    }
}
