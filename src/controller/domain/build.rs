//! The pure half of the CFDomain reconciler: whether a domain is usable. A domain has no
//! children; routes reference it by GUID and report `Ready=False` while it is missing.

use crate::{
    controller::{Error, Result, route},
    crd::CFDomain,
};

/// What the reconciler found about the objects a domain names.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The domain's namespace is the root namespace.
    pub in_root_namespace: bool,
    /// Orgs the domain names (owner or shared) that have no CFOrg in the root namespace.
    pub missing_orgs: Vec<String>,
    /// The TLS Secret, when the domain names one: `None` when it is not in the root namespace.
    pub tls_secret: Option<Option<k8s_openapi::api::core::v1::Secret>>,
}

/// Checks the domain against what it references; `Ok` means routes may use it.
pub fn check(domain: &CFDomain, root_namespace: &str, resolved: &Resolved) -> Result<()> {
    if !resolved.in_root_namespace {
        return Err(Error::Invalid {
            reason: "WrongNamespace",
            message: format!("CFDomains live in the root namespace {root_namespace:?}"),
        });
    }
    if !resolved.missing_orgs.is_empty() {
        return Err(Error::Waiting {
            reason: "OrgNotFound",
            message: format!(
                "private domain {:?} names orgs with no CFOrg in the root namespace: {}",
                domain.spec.name,
                resolved.missing_orgs.join(", ")
            ),
        });
    }
    match (&domain.spec.tls_secret_name, &resolved.tls_secret) {
        (Some(name), Some(None)) => Err(Error::Waiting {
            reason: "TLSSecretNotFound",
            message: format!("TLS Secret {name:?} is not in the root namespace {root_namespace:?}"),
        }),
        (Some(_), Some(Some(secret))) => route::build::check_tls_secret(secret),
        _ => Ok(()),
    }
}

/// The orgs a domain names: its owner first, then those it is shared with.
pub fn named_orgs(domain: &CFDomain) -> Vec<String> {
    domain
        .spec
        .organization_guid
        .iter()
        .chain(&domain.spec.shared_organization_guids)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{ByteString, api::core::v1::Secret};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fixtures;

    fn ok() -> Resolved {
        Resolved {
            in_root_namespace: true,
            ..Resolved::default()
        }
    }

    #[test]
    fn shared_domain_in_root_namespace_is_ready() {
        assert!(check(&fixtures::domain("d1", "apps.example.com"), "cf", &ok()).is_ok());
    }

    #[test]
    fn domains_elsewhere_are_invalid() {
        let resolved = Resolved {
            in_root_namespace: false,
            ..Resolved::default()
        };
        let err = check(&fixtures::domain("d1", "apps.example.com"), "cf", &resolved).unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(
            err.condition(),
            (
                "WrongNamespace",
                "CFDomains live in the root namespace \"cf\"".to_owned()
            )
        );
    }

    #[test]
    fn private_domain_waits_for_its_org() {
        let mut domain = fixtures::domain("d1", "private.example.com");
        domain.spec.organization_guid = Some("org-a".to_owned());
        domain.spec.shared_organization_guids = vec!["org-b".to_owned()];
        assert_eq!(named_orgs(&domain), vec!["org-a".to_owned(), "org-b".to_owned()]);
        let resolved = Resolved {
            missing_orgs: vec!["org-a".to_owned()],
            ..ok()
        };
        let err = check(&domain, "cf", &resolved).unwrap_err();
        assert!(!err.is_permanent());
        assert_eq!(
            err.condition(),
            ("OrgNotFound", "private domain \"private.example.com\" names orgs with no CFOrg in the root namespace: org-a".to_owned())
        );
    }

    #[test]
    fn tls_secret_must_exist_and_hold_a_key_pair() {
        let mut domain = fixtures::domain("d1", "apps.example.com");
        domain.spec.tls_secret_name = Some("apps-tls".to_owned());
        let missing = Resolved {
            tls_secret: Some(None),
            ..ok()
        };
        assert_eq!(
            check(&domain, "cf", &missing).unwrap_err().condition().0,
            "TLSSecretNotFound"
        );
        let mut secret = Secret::default();
        secret.metadata.name = Some("apps-tls".to_owned());
        let empty = Resolved {
            tls_secret: Some(Some(secret.clone())),
            ..ok()
        };
        assert_eq!(
            check(&domain, "cf", &empty).unwrap_err().condition().0,
            "InvalidTLSSecret"
        );
        secret.data = Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(b"c".to_vec())),
            ("tls.key".to_owned(), ByteString(b"k".to_vec())),
        ]));
        assert!(
            check(
                &domain,
                "cf",
                &Resolved {
                    tls_secret: Some(Some(secret)),
                    ..ok()
                }
            )
            .is_ok()
        );
    }
}
