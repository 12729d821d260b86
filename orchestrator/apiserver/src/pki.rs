//! The server's certificates and admin token, made at first start and kept in
//! `DATA_DIR/pki`: a CA that clients trust (it goes into kubeconfigs), a serving
//! certificate signed by it for every address the server answers on, and a random admin
//! bearer token. Keys and the token are readable by their owner only.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// What can go wrong making or loading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate or key could not be made or parsed.
    #[error("certificate: {0}")]
    Certificate(String),
}

/// The CA, the serving certificate and the admin token.
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate, PEM: what clients verify the server against.
    pub ca_pem: String,
    /// The serving certificate chain, PEM.
    pub cert_pem: String,
    key_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// The token node agents join with, and accept from the API server.
    pub join_token: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and tokens never reach logs.
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// The CA's fixed identity; the CA is re-created as an issuer from it and its stored key.
fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "slipway-ca");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(params)
}

fn cert(e: impl std::fmt::Display) -> PkiError {
    PkiError::Certificate(e.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Loads the PKI from `dir`, creating what is missing. The serving certificate is signed
/// afresh at every start for `localhost`, the loopback addresses and `extra_ips`, so a
/// server moved to another address stays verifiable under the same CA.
pub fn load_or_create(dir: &Path, extra_ips: &[IpAddr]) -> Result<Pki, PkiError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let ca_key_path = dir.join("ca.key");
    let ca_cert_path = dir.join("ca.crt");
    let token_path = dir.join("admin.token");

    let ca_key = match fs::read_to_string(&ca_key_path) {
        Ok(pem) => KeyPair::from_pem(&pem).map_err(cert)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate().map_err(cert)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            let ca = ca_params()?.self_signed(&key).map_err(cert)?;
            fs::write(&ca_cert_path, ca.pem()).map_err(io(&ca_cert_path))?;
            key
        }
        Err(e) => return Err(io(&ca_key_path)(e)),
    };
    let ca_pem = fs::read_to_string(&ca_cert_path).map_err(io(&ca_cert_path))?;

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for ip in extra_ips {
        let ip = ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    let mut params = CertificateParams::new(names).map_err(cert)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "slipway-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().map_err(cert)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let serving = params.signed_by(&key, &issuer).map_err(cert)?;

    Ok(Pki {
        ca_pem: ca_pem.clone(),
        cert_pem: format!("{}{ca_pem}", serving.pem()),
        key_pem: key.serialize_pem(),
        admin_token: load_or_create_token(&token_path)?,
        join_token: load_or_create_token(&dir.join(JOIN_TOKEN_FILE))?,
    })
}

/// Where the join token is kept under the PKI directory.
pub const JOIN_TOKEN_FILE: &str = "join-token";

/// The token stored at `path`, made (owner-only) the first time.
fn load_or_create_token(path: &Path) -> Result<String, PkiError> {
    match fs::read_to_string(path) {
        Ok(token) => Ok(token.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token()?;
            write_private(path, &token)?;
            Ok(token)
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// 256 random bits, hex.
pub fn random_token() -> Result<String, PkiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(cert)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner can read, replacing any earlier one atomically.
fn write_private(path: &Path, content: &str) -> Result<(), PkiError> {
    let temporary = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io(&temporary))?;
    file.write_all(content.as_bytes()).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    fs::rename(&temporary, path).map_err(io(path))
}

impl Pki {
    /// The TLS configuration serving with this PKI's certificate, HTTP/1.1 only.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(cert)?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(cert)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(cert)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(cert)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let first = load_or_create(&pki_dir, &[]).unwrap();
        assert_eq!(first.admin_token.len(), 64);
        let second = load_or_create(&pki_dir, &["10.1.2.3".parse().unwrap()]).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem, "the CA survives restarts");
        assert_eq!(first.admin_token, second.admin_token);
        assert_ne!(
            first.cert_pem, second.cert_pem,
            "serving certificates are re-signed"
        );
        for private in ["ca.key", "admin.token"] {
            let mode = fs::metadata(pki_dir.join(private))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{private} is readable by others");
        }
        second.server_config().unwrap();
        assert!(!format!("{second:?}").contains(&second.admin_token));
    }
}
