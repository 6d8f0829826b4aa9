//! TLS for the simulated cluster: a CA generated per run, a server certificate for loopback,
//! client certificates issued for named users (CN = user, O = groups), and an acceptor that
//! turns a verified client certificate into the request's user, as kube-apiserver's
//! `--client-ca-file` authenticator does.

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::{api::ClientCertUser, rbac as authn};

/// The generated CA and server identity.
pub struct Tls {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    ca_params: CertificateParams,
    ca_key: KeyPair,
    server: Arc<ServerConfig>,
}

/// A client certificate and its key, PEM.
pub struct ClientCert {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
}

impl Tls {
    /// A fresh CA and a server certificate valid for `addr`, `127.0.0.1` and `localhost`.
    pub fn generate(addr: SocketAddr) -> Result<Self, String> {
        let e = |e: rcgen::Error| e.to_string();
        let ca_key = KeyPair::generate().map_err(e)?;
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = dn("kubefoundry-sim-ca", &[]);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).map_err(e)?;
        let server_key = KeyPair::generate().map_err(e)?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "kubernetes.default.svc".to_owned()])
                .map_err(e)?;
        params.subject_alt_names.push(SanType::IpAddress(addr.ip()));
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        params.distinguished_name = dn("kube-apiserver", &[]);
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let server_cert = params.signed_by(&server_key, &issuer).map_err(e)?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(|e| e.to_string())?;
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .map_err(|e| e.to_string())?;
        let mut server = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .map_err(|e| e.to_string())?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca.pem(),
            ca_der: ca.der().to_vec(),
            ca_params,
            ca_key,
            server: Arc::new(server),
        })
    }

    /// A client certificate for `user` in `groups`, signed by the CA.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<ClientCert, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(user, groups);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        Ok(ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn dn(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn
}

/// The user a verified client certificate names: CN is the user, each O a group.
fn user_of(cert: &CertificateDer<'_>) -> Option<ClientCertUser> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let orgs: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    authn::user_from_subject(&cn, &orgs).map(ClientCertUser)
}

/// Serves `router` over TLS on `listener`, HTTP/1.1 or HTTP/2 by ALPN.
pub async fn serve(listener: TcpListener, router: Router, tls: Arc<Tls>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // As on plain HTTP (see server::start): no Nagle delay on watch events.
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(user_of);
            let service =
                hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    if let Some(user) = &user {
                        req.extensions_mut().insert(user.clone());
                    }
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
