//! The server's TLS identity from PEM files: rustls with the ring provider (no OpenSSL),
//! TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 offered by ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use super::options::TlsFiles;
use crate::files::{MAX_PEM_BYTES, read_bounded};

/// Why the TLS identity could not be loaded. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable PEM block of the kind needed.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("TLS identity ({cert}, {key}): {reason}")]
    Config {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// rustls's reason.
        reason: String,
    },
}

/// A TLS acceptor for `files`.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let shown = |p: &Path| p.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: shown(&files.cert),
            what: format!("not a PEM certificate chain ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: shown(&files.cert),
            what: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
        path: shown(&files.key),
        what: "no PKCS#8, PKCS#1 or SEC1 private key block".into(),
    })?;
    let config_error = |reason: String| TlsError::Config {
        cert: shown(&files.cert),
        key: shown(&files.key),
        reason,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| config_error(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    read_bounded(path, MAX_PEM_BYTES).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}
