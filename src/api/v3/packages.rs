//! `/v3/packages`: CRUD, bits upload and download, and an app's packages. Docker packages are
//! READY at once (registry credentials go to a Secret the package references); bits are
//! streamed to a file under `package_dir` (never held in memory, capped, renamed into place only
//! when complete) and recorded on the package as annotations the controller turns into READY
//! with a checksum, so an upload needs no more rights than the caller's own.

use std::{path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State, multipart::Field},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::reflector::Store,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{
    jobs, metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult, MAX_JSON_BODY,
        body::{MetadataBody, ToOne, parse},
        error::from_kube,
        query::Query,
    },
    controller::package::build::{BITS_SHA256, BITS_SIZE, state as package_state, uploaded},
    crd::{CFApp, CFPackage, CFPackageSpec, PackageState, PackageType, SecretRef},
    labels::FIELD_MANAGER,
};

/// Records the registry user name of a docker package (the password stays in the Secret).
const REGISTRY_USERNAME: &str = "kubefoundry.dev/registry-username";

/// Multipart framing and the `resources` part, allowed on top of the bits cap.
const MULTIPART_OVERHEAD: u64 = MAX_JSON_BODY as u64;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/packages", get(list).post(create))
        .route(
            "/v3/packages/{guid}",
            get(resource::show::<CFPackage>)
                .patch(resource::update_metadata::<CFPackage>)
                .delete(destroy),
        )
        // The bits cap is enforced while streaming, not by the JSON body limit.
        .route(
            "/v3/packages/{guid}/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v3/packages/{guid}/download", get(download))
        .route("/v3/apps/{guid}/packages", get(app_packages))
}

/// A package state as CF spells it (`AWAITING_UPLOAD`), which is how the CRD serializes it.
pub fn state_name(state: PackageState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The package's state: the controller's rule, so a docker package or a recorded upload reads
/// READY even before the controller has written it, and nothing is ever presented unknown.
pub fn current_state(package: &CFPackage) -> PackageState {
    package_state(package)
}

fn type_name(t: PackageType) -> &'static str {
    match t {
        PackageType::Bits => "bits",
        PackageType::Docker => "docker",
    }
}

impl CfKind for CFPackage {
    const KIND: &'static str = "Package";
    const FILTERS: &'static [&'static str] = &[
        "app_guids",
        "space_guids",
        "organization_guids",
        "states",
        "types",
    ];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.packages
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let (created_at, updated_at) = timestamps(&self.metadata);
        let app = &self.spec.app_guid;
        let mut links = json!({
            "self": cx.link(&format!("/v3/packages/{guid}")),
            "app": cx.link(&format!("/v3/apps/{app}")),
        });
        let data = match self.spec.type_ {
            PackageType::Bits => {
                let checksum = uploaded(self)
                    .map(|(c, _)| c.value)
                    .or_else(|| self.status.as_ref()?.checksum.as_ref().map(|c| c.value.clone()));
                let mut upload = cx.link(&format!("/v3/packages/{guid}/upload"));
                upload["method"] = json!("POST");
                let mut download = cx.link(&format!("/v3/packages/{guid}/download"));
                download["method"] = json!("GET");
                links["upload"] = upload;
                links["download"] = download;
                json!({
                    "checksum": {"type": "sha256", "value": checksum},
                    "error": self.status.as_ref().and_then(|s| s.error.clone()),
                })
            }
            PackageType::Docker => json!({
                "image": self.spec.image,
                "username": self.annotations().get(REGISTRY_USERNAME),
                "password": self.spec.credentials.as_ref().map(|_| "***"),
            }),
        };
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "type": type_name(self.spec.type_),
            "data": data,
            "state": state_name(current_state(self)),
            "relationships": {"app": to_one(Some(app))},
            "metadata": metadata(&self.metadata),
            "links": links,
        })
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = self.namespace().unwrap_or_default();
        match key {
            "app_guids" => values.contains(&self.spec.app_guid),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "states" => values.contains(&state_name(current_state(self))),
            "types" => values.iter().any(|v| v == type_name(self.spec.type_)),
            _ => true,
        }
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFPackage>(&state, &caller, raw.as_deref(), "/v3/packages", |_| true)
}

async fn app_packages(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    let app = resource::find::<CFApp>(&state, &caller, &guid)?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    let space = app.namespace();
    resource::list_with::<CFPackage>(
        &state,
        &caller,
        &q,
        &format!("/v3/apps/{guid}/packages"),
        |p| p.spec.app_guid == guid && p.namespace() == space,
        &["states", "types"],
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "type")]
    type_: String,
    relationships: AppRelationship,
    #[serde(default)]
    data: Option<PackageData>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRelationship {
    app: ToOne,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PackageData {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// What a create body asks for, checked.
#[derive(Debug, PartialEq)]
enum Wanted {
    Bits,
    Docker {
        image: String,
        credentials: Option<(String, String)>,
    },
}

fn wanted(type_: &str, data: Option<PackageData>) -> CfResult<Wanted> {
    match type_ {
        "bits" => match data {
            Some(d) if d.image.is_some() || d.username.is_some() || d.password.is_some() => Err(
                CfError::Unprocessable("Data must be empty if provided for bits".into()),
            ),
            _ => Ok(Wanted::Bits),
        },
        "docker" => {
            let d = data.unwrap_or_default();
            let image = d
                .image
                .filter(|i| !i.trim().is_empty())
                .ok_or_else(|| CfError::Unprocessable("Data Image required".into()))?;
            if image.chars().any(char::is_whitespace) {
                return Err(CfError::Unprocessable(
                    "Data Image must not contain whitespace".into(),
                ));
            }
            let credentials = match (d.username, d.password) {
                (None, None) => None,
                (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Some((u, p)),
                _ => {
                    return Err(CfError::Unprocessable(
                        "Data Username and password must both be provided".into(),
                    ));
                }
            };
            Ok(Wanted::Docker { image, credentials })
        }
        _ => Err(CfError::Unprocessable(
            "Type must be one of 'bits, docker'".into(),
        )),
    }
}

/// The name of the Secret holding a docker package's registry credentials.
fn credentials_secret(package: &str) -> String {
    format!("{package}-registry-credentials")
}

async fn create(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    if Query::parse(raw.as_deref().unwrap_or(""))?
        .get("source_guid")
        .is_some()
    {
        return Err(CfError::Unprocessable(
            "Copying packages is not supported yet: create a new package".into(),
        ));
    }
    let body: CreateBody = parse(&body)?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    let app_guid = body.relationships.app.required("app")?;
    let wanted = wanted(&body.type_, body.data)?;
    let app = resource::find::<CFApp>(&state, &caller, &app_guid).map_err(|_| {
        CfError::Unprocessable("App is invalid. Ensure it exists and you have access to it.".into())
    })?;
    let namespace = app.namespace().unwrap_or_default();
    let guid = resource::new_guid();
    let mut package = CFPackage::new(
        &guid,
        CFPackageSpec {
            app_guid: app_guid.clone(),
            type_: PackageType::Bits,
            image: None,
            credentials: None,
        },
    );
    package.metadata.namespace = Some(namespace.clone());
    if let Some(m) = &body.metadata {
        m.apply_to(&mut package.metadata);
    }
    let mut credentials = None;
    if let Wanted::Docker {
        image,
        credentials: c,
    } = wanted
    {
        package.spec.type_ = PackageType::Docker;
        package.spec.image = Some(image);
        if let Some((username, password)) = c {
            package.spec.credentials = Some(SecretRef {
                name: credentials_secret(&guid),
            });
            package
                .annotations_mut()
                .insert(REGISTRY_USERNAME.to_owned(), username.clone());
            credentials = Some((username, password));
        }
    }
    let created = resource::create(&state, &caller, &package).await?;
    if let Some((username, password)) = credentials
        && let Err(e) = store_credentials(&state, &caller, &created, &username, &password).await
    {
        // Nothing half-made: a docker package whose credentials could not be stored is removed.
        let _ = resource::delete(&state, &caller, &created).await;
        return Err(e);
    }
    Ok((StatusCode::CREATED, Json(created.present(&Cx::new(&state)))).into_response())
}

/// The Secret with a docker package's registry credentials, owned by the package so it goes
/// with it, written as the caller.
async fn store_credentials(
    state: &ApiState,
    caller: &Caller,
    package: &CFPackage,
    username: &str,
    password: &str,
) -> CfResult<()> {
    let namespace = package.namespace().unwrap_or_default();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(credentials_secret(&package.name_any())),
            namespace: Some(namespace.clone()),
            owner_references: package.controller_owner_ref(&()).map(|r| vec![r]),
            ..kube::api::ObjectMeta::default()
        },
        string_data: Some(
            [
                ("username".to_owned(), username.to_owned()),
                ("password".to_owned(), password.to_owned()),
            ]
            .into(),
        ),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(state.client_for(&caller.who)?, &namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    secrets
        .create(&params, &secret)
        .await
        .map_err(|e| from_kube(e, "Package", false))?;
    Ok(())
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFPackage>(&state, &caller, &guid)?;
    resource::delete(&state, &caller, &*current).await?;
    // The bits go with the package; a leftover directory would only waste disk.
    if let Err(e) = tokio::fs::remove_dir_all(package_dir(&state, &guid)).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(package = %guid, error = %e, "could not remove the package's bits");
    }
    Ok(jobs::accepted(&state, "package.delete", &guid))
}

/// Where a package's bits live: one file per checksum, so the recorded checksum names the file
/// and two racing uploads can never leave a record pointing at the other's bits.
fn package_dir(state: &ApiState, guid: &str) -> PathBuf {
    state.config.package_dir.join(guid)
}

/// Where uploads are written until complete: beside the packages (one filesystem, so the final
/// rename is atomic) but never inside a package's directory.
fn incoming_dir(state: &ApiState) -> PathBuf {
    state.config.package_dir.join(".incoming")
}

/// A file removed when dropped unless kept: an upload cut off at any point (an error, the
/// cap, the client going away) leaves nothing behind.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Bits written to a temporary file, with their digest and size.
struct Received {
    file: TempFile,
    sha256: String,
    size: u64,
}

fn io_error(e: std::io::Error) -> CfError {
    CfError::internal(e)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> CfError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        CfError::TooLarge
    } else {
        CfError::MessageParse(e.body_text())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams the `bits` part to a temporary file, hashing as it goes, refusing more than the cap.
async fn receive(state: &ApiState, mut field: Field<'_>) -> CfResult<Received> {
    let dir = incoming_dir(state);
    tokio::fs::create_dir_all(&dir).await.map_err(io_error)?;
    let file = TempFile {
        path: dir.join(resource::new_guid()),
        keep: false,
    };
    let mut out = tokio::fs::File::create(&file.path).await.map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        if size > state.config.max_upload_bytes {
            return Err(CfError::TooLarge);
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io_error)?;
    }
    out.flush().await.map_err(io_error)?;
    out.sync_all().await.map_err(io_error)?;
    drop(out);
    if !is_zip(&file.path, size).await.map_err(io_error)? {
        return Err(CfError::Unprocessable(
            "The uploaded bits are not a zip archive".into(),
        ));
    }
    Ok(Received {
        file,
        sha256: hex(&hasher.finalize()),
        size,
    })
}

/// Whether a file ends the way every zip archive does: an end-of-central-directory record
/// within its last 64 KiB (the record's 22 bytes plus a comment of at most 65535).
async fn is_zip(path: &std::path::Path, size: u64) -> std::io::Result<bool> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let tail = size.min(22 + 65_535);
    if tail < 22 {
        return Ok(false);
    }
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(size - tail)).await?;
    let mut buf = Vec::with_capacity(usize::try_from(tail).unwrap_or(0));
    file.read_to_end(&mut buf).await?;
    Ok(buf.windows(EOCD.len()).any(|w| w == EOCD))
}

/// Reads a small text part, refusing more than `limit` bytes.
async fn small_text(mut field: Field<'_>, limit: usize) -> CfResult<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > limit {
            return Err(CfError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| CfError::MessageParse("resources must be UTF-8 JSON".into()))
}

async fn upload(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let package = resource::find::<CFPackage>(&state, &caller, &guid)?;
    if package.spec.type_ != PackageType::Bits {
        return Err(CfError::Unprocessable("Package type must be bits.".into()));
    }
    if current_state(&package) != PackageState::AwaitingUpload {
        return Err(CfError::PackageBitsAlreadyUploaded);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(CfError::TooLarge);
    }
    // Refuse before receiving anything when the caller may not write the package at all (a
    // dry run of the very write that records the upload).
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        dry_run: true,
        ..PatchParams::default()
    };
    resource::api_as::<CFPackage>(&state, &caller, &package.namespace().unwrap_or_default())?
        .patch(&guid, &params, &Patch::Merge(json!({"metadata": {}})))
        .await
        .map_err(|e| from_kube(e, "Package", false))?;
    let mut multipart = multipart.map_err(|e| CfError::MessageParse(e.body_text()))?;
    let mut bits = None;
    let mut resources = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("bits") => bits = Some(receive(&state, field).await?),
            Some("resources") => {
                let text = small_text(field, MAX_JSON_BODY).await?;
                let value: Value =
                    serde_json::from_str(&text).map_err(|e| CfError::MessageParse(e.to_string()))?;
                resources = Some(value);
            }
            // Parts CC does not know are ignored, as it does (they are drained unread).
            _ => {}
        }
    }
    let matched = match &resources {
        None | Some(Value::Null) => 0,
        Some(Value::Array(items)) => items.len(),
        Some(_) => {
            return Err(CfError::Unprocessable("Resources must be an array".into()));
        }
    };
    if matched > 0 {
        // resource_match never matches anything here, so a client never has reason to send any.
        return Err(CfError::Unprocessable(
            "Resource matching is not supported: upload every file in bits".into(),
        ));
    }
    let Some(bits) = bits else {
        return Err(CfError::Unprocessable(
            "Upload must include either resources or bits".into(),
        ));
    };
    let recorded = record(&state, &caller, &package, bits).await?;
    Ok(Json(recorded.present(&Cx::new(&state))))
}

/// Moves received bits into place and records them on the package, as the caller. The record
/// is written with the package's resourceVersion as a precondition, so of two racing uploads
/// exactly one is recorded and the other is told the bits were already uploaded.
async fn record(
    state: &ApiState,
    caller: &Caller,
    package: &CFPackage,
    mut bits: Received,
) -> CfResult<CFPackage> {
    let guid = package.name_any();
    let dir = package_dir(state, &guid);
    tokio::fs::create_dir_all(&dir).await.map_err(io_error)?;
    let path = dir.join(&bits.sha256);
    tokio::fs::rename(&bits.file.path, &path)
        .await
        .map_err(io_error)?;
    bits.file.keep = true;
    // From here the file is ours to remove when it ends up recorded nowhere.
    let placed = TempFile { path, keep: false };
    let mut current = package.clone();
    for _ in 0..5 {
        let patch = json!({
            "metadata": {
                "resourceVersion": current.resource_version(),
                "annotations": {BITS_SHA256: bits.sha256, BITS_SIZE: bits.size.to_string()},
            },
        });
        match resource::patch(state, caller, &current, &patch).await {
            Ok(updated) => {
                let mut placed = placed;
                placed.keep = true;
                return Ok(updated);
            }
            Err(CfError::Uniqueness(_)) => {
                let fresh = resource::lookup::<CFPackage>(&state.caches, &guid)
                    .ok_or(CfError::NotFound("Package"))?;
                if let Some((winner, _)) = uploaded(&fresh) {
                    let mut placed = placed;
                    // Same bits: the winner's record names this very file.
                    placed.keep = winner.value == bits.sha256;
                    return Err(CfError::PackageBitsAlreadyUploaded);
                }
                // Another change (labels, the controller's adoption) moved the version on.
                current = (*fresh).clone();
            }
            Err(e) => return Err(e),
        }
    }
    Err(CfError::Unavailable(
        "The package kept changing while its upload was recorded; try again".into(),
    ))
}

async fn download(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let package = resource::find::<CFPackage>(&state, &caller, &guid)?;
    if package.spec.type_ != PackageType::Bits {
        return Err(CfError::Unprocessable("Package type must be bits.".into()));
    }
    let Some((checksum, size)) = uploaded(&package) else {
        return Err(CfError::Unprocessable("Package has no bits to download.".into()));
    };
    let path = package_dir(&state, &guid).join(&checksum.value);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CfError::NotFound("Package bits"));
        }
        Err(e) => return Err(io_error(e)),
    };
    let stream = futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{guid}.zip\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Presenter test support for the package, build, droplet and task families.
#[cfg(test)]
pub(crate) mod testing {
    use kube::runtime::{reflector, watcher};

    use super::Cx;
    use crate::{
        api::Caches,
        crd::{CFApp, CFDroplet, CFPackage, CFProcess},
    };

    fn filled<K>(objects: Vec<K>) -> reflector::Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let (reader, mut writer) = reflector::store();
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::Apply(o));
        }
        reader
    }

    /// Caches holding these objects (and nothing else).
    pub fn caches(
        apps: Vec<CFApp>,
        processes: Vec<CFProcess>,
        packages: Vec<CFPackage>,
        droplets: Vec<CFDroplet>,
    ) -> Caches {
        Caches {
            orgs: reflector::store().0,
            spaces: reflector::store().0,
            roles: reflector::store().0,
            apps: filled(apps),
            processes: filled(processes),
            packages: filled(packages),
            builds: reflector::store().0,
            droplets: filled(droplets),
            routes: reflector::store().0,
            domains: reflector::store().0,
            tasks: reflector::store().0,
            service_instances: reflector::store().0,
            service_bindings: reflector::store().0,
            pods: reflector::store().0,
            access: Default::default(),
        }
    }

    /// Runs `f` with a context over `caches` and the base URL `https://api.example.org`.
    pub fn with_cx<T>(caches: &Caches, f: impl FnOnce(&Cx<'_>) -> T) -> T {
        let cx = Cx {
            base: "https://api.example.org",
            caches,
            root: "cf",
            query: None,
        };
        f(&cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fixtures;

    fn cx_test<T>(f: impl FnOnce(&Cx<'_>) -> T) -> T {
        let caches = testing::caches(vec![], vec![], vec![], vec![]);
        testing::with_cx(&caches, f)
    }

    #[test]
    fn a_docker_package_presents_ready_with_hidden_password() {
        let mut p = fixtures::docker_package("pkg-1", "app-1", "nginx:1.27");
        p.spec.credentials = Some(SecretRef {
            name: "pkg-1-registry-credentials".into(),
        });
        p.annotations_mut().insert(REGISTRY_USERNAME.into(), "me".into());
        let v = cx_test(|cx| p.present(cx));
        assert_eq!(v["type"], "docker");
        assert_eq!(v["state"], "READY");
        assert_eq!(
            v["data"],
            json!({"image": "nginx:1.27", "username": "me", "password": "***"})
        );
        assert_eq!(v["relationships"]["app"]["data"]["guid"], "app-1");
        assert_eq!(
            v["links"],
            json!({
                "self": {"href": "https://api.example.org/v3/packages/pkg-1"},
                "app": {"href": "https://api.example.org/v3/apps/app-1"},
            })
        );
        assert_eq!(v["metadata"]["annotations"], json!({}));
    }

    #[test]
    fn a_bits_package_awaits_then_is_ready_with_its_checksum() {
        let mut p = fixtures::bits_package("pkg-2", "app-1");
        let v = cx_test(|cx| p.present(cx));
        assert_eq!(v["state"], "AWAITING_UPLOAD");
        assert_eq!(
            v["data"],
            json!({"checksum": {"type": "sha256", "value": null}, "error": null})
        );
        assert_eq!(
            v["links"]["upload"],
            json!({"href": "https://api.example.org/v3/packages/pkg-2/upload", "method": "POST"})
        );
        let sha = "0f".repeat(32);
        p.annotations_mut().insert(BITS_SHA256.into(), sha.clone());
        p.annotations_mut().insert(BITS_SIZE.into(), "10".into());
        let v = cx_test(|cx| p.present(cx));
        assert_eq!(v["state"], "READY");
        assert_eq!(v["data"]["checksum"]["value"], sha);
        assert!(cx_test(|cx| p.filter("states", &["READY".into()], cx)));
        assert!(cx_test(|cx| p.filter("types", &["bits".into()], cx)));
        assert!(!cx_test(|cx| p.filter("types", &["docker".into()], cx)));
    }

    #[test]
    fn create_bodies_are_checked_the_cc_way() {
        assert_eq!(wanted("bits", None).unwrap(), Wanted::Bits);
        assert_eq!(
            wanted("bits", Some(PackageData::default())).unwrap(),
            Wanted::Bits
        );
        let docker = |image: Option<&str>, u: Option<&str>, p: Option<&str>| PackageData {
            image: image.map(Into::into),
            username: u.map(Into::into),
            password: p.map(Into::into),
        };
        assert_eq!(
            wanted("docker", Some(docker(Some("nginx"), Some("u"), Some("p")))).unwrap(),
            Wanted::Docker {
                image: "nginx".into(),
                credentials: Some(("u".into(), "p".into()))
            }
        );
        let err = |r: CfResult<Wanted>| r.unwrap_err().to_string();
        assert_eq!(err(wanted("docker", None)), "Data Image required");
        assert_eq!(
            err(wanted("docker", Some(docker(Some("nginx"), Some("u"), None)))),
            "Data Username and password must both be provided"
        );
        assert_eq!(
            err(wanted("bits", Some(docker(Some("x"), None, None)))),
            "Data must be empty if provided for bits"
        );
        assert_eq!(err(wanted("oci", None)), "Type must be one of 'bits, docker'");
    }

    #[tokio::test]
    async fn only_zip_archives_pass() {
        let dir = std::env::temp_dir().join(format!("kf-zip-{}", resource::new_guid()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty_zip = dir.join("a.zip");
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.extend([0u8; 18]);
        std::fs::write(&empty_zip, &eocd).unwrap();
        assert!(is_zip(&empty_zip, eocd.len() as u64).await.unwrap());
        let text = dir.join("b.txt");
        std::fs::write(&text, b"hello, this is not an archive at all").unwrap();
        assert!(!is_zip(&text, 36).await.unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
