//! `Authorization: ClientCert <base64(PEM certificate + PEM PKCS#8 key)>`: what the cf CLI sends
//! in `cf_on_k8s` mode for a kubeconfig user with a client certificate. Possession of the key
//! is proven by sending it (that is the CLI's protocol), so the façade checks that it matches
//! the certificate, that the certificate chains to the cluster's client CA for client
//! authentication and is valid now (rustls' WebPKI verifier), and then reads CN and O.

use std::{sync::Arc, time::SystemTime};

use base64::Engine as _;
use rustls::{
    RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject as _},
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::CertifiedKey,
};

use super::Identity;

/// Why a client certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not base64, or no PEM certificate/key inside.
    #[error("malformed ClientCert credential: {0}")]
    Malformed(String),
    /// The chain, validity period or key usage check failed.
    #[error("certificate not trusted: {0}")]
    Untrusted(rustls::Error),
    /// The key is not the certificate's.
    #[error("private key does not match the certificate: {0}")]
    KeyMismatch(rustls::Error),
    /// The subject has no common name.
    #[error("certificate subject has no CN")]
    NoCommonName,
}

/// A certificate that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// CN as the user, each O as a group.
    pub identity: Identity,
    /// The end of the certificate's validity.
    pub not_after: SystemTime,
}

/// Verifies client certificates against a CA bundle.
pub struct Verifier {
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl Verifier {
    /// A verifier trusting the DER certificates `cas`.
    pub fn new(cas: &[Vec<u8>]) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in cas {
            roots
                .add(CertificateDer::from(cert.clone()))
                .map_err(|e| format!("CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("CA bundle holds no certificate".to_owned());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { provider, verifier })
    }

    /// Checks the base64 `data` of a `ClientCert` header at time `now`.
    pub fn verify(&self, data: &str, now: SystemTime) -> Result<Verified, Error> {
        let (chain, key) = parse(data)?;
        let (end_entity, intermediates) = chain
            .split_first()
            .ok_or_else(|| Error::Malformed("no CERTIFICATE block".to_owned()))?;
        let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::since_unix_epoch(since_epoch))
            .map_err(Error::Untrusted)?;
        let signing = self
            .provider
            .key_provider
            .load_private_key(key)
            .map_err(Error::KeyMismatch)?;
        CertifiedKey::new(chain.clone(), signing)
            .keys_match()
            .map_err(Error::KeyMismatch)?;
        subject(end_entity)
    }
}

/// The DER certificates of a PEM bundle (a `--client-ca-file`).
pub fn ders_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let ders = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA bundle: {e}"))?;
    if ders.is_empty() {
        return Err("CA bundle holds no certificate".to_owned());
    }
    Ok(ders)
}

/// The certificates (end entity first) and the private key of a `ClientCert` credential.
pub fn parse(data: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::Malformed(format!("not base64: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Malformed(e.to_string()))?;
    if chain.is_empty() {
        return Err(Error::Malformed("no CERTIFICATE block".to_owned()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| Error::Malformed(format!("private key: {e}")))?;
    Ok((chain, key))
}

/// CN as the user, each O as a group, and the end of validity, as kube-apiserver reads them.
fn subject(cert: &CertificateDer<'_>) -> Result<Verified, Error> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| Error::Malformed(format!("certificate: {e}")))?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or(Error::NoCommonName)?
        .to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    let not_after = u64::try_from(parsed.validity().not_after.timestamp())
        .map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Verified {
        identity: Identity::user(name, groups),
        not_after,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn header(cert_pem: &str, key_pem: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{cert_pem}{key_pem}"))
    }

    fn ca() -> kubefoundry_sim::tls::Tls {
        kubefoundry_sim::tls::Tls::generate(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap()
    }

    #[test]
    fn a_cert_from_the_ca_names_its_cn_and_orgs() {
        let tls = ca();
        // rcgen keeps one value per attribute type, so the simulated CA issues one O at most.
        let cert = tls.client_cert("alice", &["dev"]).unwrap();
        let v = Verifier::new(&ders_from_pem(&tls.ca_pem).unwrap()).unwrap();
        let ok = v
            .verify(&header(&cert.cert_pem, &cert.key_pem), SystemTime::now())
            .unwrap();
        assert_eq!(ok.identity.name, "alice");
        assert_eq!(ok.identity.groups, vec!["dev".to_owned()]);
        assert_eq!(ok.identity.kind, "user");
        assert!(ok.not_after > SystemTime::now());
    }

    #[test]
    fn another_ca_an_alien_key_or_an_expired_cert_is_refused() {
        let tls = ca();
        let cert = tls.client_cert("alice", &[]).unwrap();
        let other = ca();
        let other_cert = other.client_cert("alice", &[]).unwrap();
        let v = Verifier::new(&ders_from_pem(&tls.ca_pem).unwrap()).unwrap();
        let err = v
            .verify(
                &header(&other_cert.cert_pem, &other_cert.key_pem),
                SystemTime::now(),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Untrusted(_)), "{err}");
        let err = v
            .verify(&header(&cert.cert_pem, &other_cert.key_pem), SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, Error::KeyMismatch(_)), "{err}");
        // rcgen's default validity ends in 4096; far beyond that the certificate has expired.
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(4_200 * 365 * 86_400);
        let err = v
            .verify(&header(&cert.cert_pem, &cert.key_pem), later)
            .unwrap_err();
        assert!(matches!(err, Error::Untrusted(_)), "{err}");
        let before = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        let err = v
            .verify(&header(&cert.cert_pem, &cert.key_pem), before)
            .unwrap_err();
        assert!(matches!(err, Error::Untrusted(_)), "{err}");
    }

    #[test]
    fn malformed_credentials_are_told() {
        let tls = ca();
        let v = Verifier::new(&ders_from_pem(&tls.ca_pem).unwrap()).unwrap();
        for (data, want) in [
            ("!!!".to_owned(), "not base64"),
            (
                base64::engine::general_purpose::STANDARD.encode("hello"),
                "CERTIFICATE",
            ),
        ] {
            let err = v.verify(&data, SystemTime::now()).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let cert = tls.client_cert("alice", &[]).unwrap();
        let err = v
            .verify(
                &base64::engine::general_purpose::STANDARD.encode(&cert.cert_pem),
                SystemTime::now(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("private key"), "{err}");
        assert!(ders_from_pem("not pem").is_err());
        assert!(Verifier::new(&[b"not der".to_vec()]).is_err());
    }
}
