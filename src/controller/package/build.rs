//! The pure half of the CFPackage reconciler: the state a package is in and its status.

use kube::ResourceExt;

use crate::{
    controller::{Error, status},
    crd::{CFPackage, CFPackageStatus, PackageState, PackageType, package::Checksum},
    labels::APP_GUID,
};

/// Set by the API, as the uploading caller, once a bits package's bits are stored: their
/// sha256. An annotation rather than a status write, so the upload needs no more rights than
/// the caller's own (RBAC grants developers packages, not their status).
pub const BITS_SHA256: &str = "kubefoundry.dev/bits-sha256";
/// Set with [`BITS_SHA256`]: the size of the stored bits in bytes.
pub const BITS_SIZE: &str = "kubefoundry.dev/bits-size";

/// The checksum and size of a bits package's stored bits, when the API recorded an upload.
pub fn uploaded(package: &CFPackage) -> Option<(Checksum, i64)> {
    let annotations = package.annotations();
    let sha = annotations
        .get(BITS_SHA256)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let size = annotations
        .get(BITS_SIZE)?
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 0)?;
    let checksum = Checksum {
        type_: "sha256".to_owned(),
        value: sha.clone(),
    };
    Some((checksum, size))
}

/// The labels a package is adopted with.
pub fn labels(package: &CFPackage) -> Vec<(&'static str, String)> {
    vec![(APP_GUID, package.spec.app_guid.clone())]
}

/// The package's state. A docker package is complete the moment it exists; a bits package
/// awaits its upload, and is complete once the API recorded one ([`uploaded`]). Any other
/// state set since is kept.
pub fn state(package: &CFPackage) -> PackageState {
    let current = package.status.as_ref().and_then(|s| s.state);
    match (package.spec.type_, current) {
        (PackageType::Docker, None | Some(PackageState::AwaitingUpload)) => PackageState::Ready,
        (PackageType::Bits, None | Some(PackageState::AwaitingUpload)) if uploaded(package).is_some() => {
            PackageState::Ready
        }
        (PackageType::Bits, None) => PackageState::AwaitingUpload,
        (_, Some(state)) => state,
    }
}

/// The package's status: its [`state`], and `Ready` from `adoption` (its app must exist to
/// own it) and then from the state. Checksum and size come from the recorded upload; error,
/// like any other field set since, is kept.
pub fn status(package: &CFPackage, adoption: &Result<(), Error>) -> CFPackageStatus {
    let current = package.status.clone().unwrap_or_default();
    let (checksum, size) = match uploaded(package) {
        Some((checksum, size)) => (Some(checksum), Some(size)),
        None => (current.checksum.clone(), current.size),
    };
    let state = state(package);
    let generation = package.metadata.generation;
    let (ok, reason, message) = match adoption {
        Err(e) => {
            let (reason, message) = e.condition();
            (false, reason, message)
        }
        Ok(()) => match state {
            PackageState::Ready => (true, "PackageReady", String::new()),
            PackageState::AwaitingUpload => (
                false,
                "AwaitingUpload",
                "waiting for the app's bits to be uploaded".to_owned(),
            ),
            PackageState::ProcessingUpload => (
                false,
                "ProcessingUpload",
                "the uploaded bits are being processed".to_owned(),
            ),
            PackageState::Failed => (
                false,
                "UploadFailed",
                current
                    .error
                    .clone()
                    .unwrap_or_else(|| "the upload of the package's bits failed".to_owned()),
            ),
            PackageState::Copying => (
                false,
                "Copying",
                "the bits are being copied from another package".to_owned(),
            ),
            PackageState::Expired => (false, "Expired", "the package's bits were removed".to_owned()),
        },
    };
    let want = status::Want {
        type_: crate::crd::READY,
        ok,
        reason,
        message,
    };
    CFPackageStatus {
        common: crate::crd::CommonStatus {
            observed_generation: generation,
            conditions: status::merge(&current.common.conditions, &[want], generation),
        },
        state: Some(state),
        checksum,
        size,
        ..current
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;
    use crate::fixtures;

    /// The status as JSON with the one wall-clock field removed.
    fn json_of(status: &CFPackageStatus) -> Value {
        let mut value = serde_json::to_value(status).unwrap();
        for c in value["conditions"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("lastTransitionTime");
        }
        value
    }

    fn generation(mut package: CFPackage) -> CFPackage {
        package.metadata.generation = Some(1);
        package
    }

    #[test]
    fn a_docker_package_is_ready_at_once() {
        let package = generation(fixtures::docker_package("pkg-1", "app-1", "nginx:1.27"));
        assert_eq!(
            json_of(&status(&package, &Ok(()))),
            json!({
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "PackageReady", "message": "",
                    "observedGeneration": 1,
                }],
                "state": "READY",
            })
        );
    }

    #[test]
    fn a_bits_package_awaits_its_upload() {
        let package = generation(fixtures::bits_package("pkg-1", "app-1"));
        assert_eq!(
            json_of(&status(&package, &Ok(()))),
            json!({
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "AwaitingUpload",
                    "message": "waiting for the app's bits to be uploaded", "observedGeneration": 1,
                }],
                "state": "AWAITING_UPLOAD",
            })
        );
    }

    /// The API moves a bits package on; the controller must not set it back.
    #[test]
    fn the_apis_state_and_fields_are_kept() {
        let mut package = generation(fixtures::bits_package("pkg-1", "app-1"));
        package.status = Some(CFPackageStatus {
            state: Some(PackageState::Failed),
            error: Some("PackageBitsError - the zip is corrupt".to_owned()),
            size: Some(42),
            ..CFPackageStatus::default()
        });
        assert_eq!(
            json_of(&status(&package, &Ok(()))),
            json!({
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "UploadFailed",
                    "message": "PackageBitsError - the zip is corrupt", "observedGeneration": 1,
                }],
                "state": "FAILED",
                "size": 42,
                "error": "PackageBitsError - the zip is corrupt",
            })
        );
        package.status.as_mut().unwrap().state = Some(PackageState::Ready);
        assert_eq!(state(&package), PackageState::Ready);
        package.status.as_mut().unwrap().state = Some(PackageState::ProcessingUpload);
        assert_eq!(state(&package), PackageState::ProcessingUpload);
    }

    /// The API records an upload in annotations; the package becomes READY with its checksum.
    #[test]
    fn a_recorded_upload_makes_a_bits_package_ready() {
        let mut package = generation(fixtures::bits_package("pkg-1", "app-1"));
        let sha = "ab".repeat(32);
        package.metadata.annotations = Some(
            [
                (BITS_SHA256.to_owned(), sha.clone()),
                (BITS_SIZE.to_owned(), "123".to_owned()),
            ]
            .into(),
        );
        assert_eq!(
            json_of(&status(&package, &Ok(()))),
            json!({
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "PackageReady", "message": "",
                    "observedGeneration": 1,
                }],
                "state": "READY",
                "checksum": {"type": "sha256", "value": sha},
                "size": 123,
            })
        );
        package.status = Some(CFPackageStatus {
            state: Some(PackageState::AwaitingUpload),
            ..CFPackageStatus::default()
        });
        assert_eq!(state(&package), PackageState::Ready);
        // A malformed record is no upload.
        package
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(BITS_SHA256.to_owned(), "not-a-digest".to_owned());
        assert_eq!(state(&package), PackageState::AwaitingUpload);
    }

    #[test]
    fn a_package_without_its_app_is_not_ready() {
        let package = generation(fixtures::docker_package("pkg-1", "app-1", "nginx"));
        let missing = Err(Error::Waiting {
            reason: "AppNotFound",
            message: "no app".to_owned(),
        });
        assert_eq!(
            json_of(&status(&package, &missing)),
            json!({
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "AppNotFound", "message": "no app",
                    "observedGeneration": 1,
                }],
                "state": "READY",
            })
        );
    }

    #[test]
    fn packages_are_labelled_with_their_app() {
        assert_eq!(
            labels(&fixtures::bits_package("p", "app-9")),
            vec![("kubefoundry.dev/app-guid", "app-9".to_owned())]
        );
    }
}
