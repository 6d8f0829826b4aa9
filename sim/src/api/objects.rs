//! The object verbs: create, get, list, update, patch (merge, JSON, strategic, apply) and
//! delete, with kube-apiserver's semantics for resourceVersions, generations, status
//! subresources, finalizers, managedFields, dry runs and field validation.

use std::{collections::BTreeMap, sync::Arc};

use axum::{body::Bytes, response::Response};
use serde_json::{Map, Value, json};

use super::{ApiError, ApiResult, Ctx, created, decode_body, ok, table};
use crate::{
    cluster::Cluster,
    kinds,
    managed::{self, MergeSchema},
    merge_keys::{ListType, builtin_list_type},
    patch,
    registry::ResourceType,
    selector::{FieldSelector, LabelSelector},
    store::{Key, Write, Written},
    time::now_rfc3339,
};

/// Routes a resource request to its verb.
pub async fn dispatch(cluster: &Arc<Cluster>, ctx: &Ctx, body: Bytes) -> ApiResult<Response> {
    let info = &ctx.info;
    if info.resource.is_empty() {
        return super::discovery::group_version(cluster, &info.api_group, &info.api_version);
    }
    let rt = cluster
        .registry
        .get(&info.api_group, &info.api_version, &info.resource)
        .ok_or_else(ApiError::path_not_found)?;
    // A cluster-scoped resource asked for inside a namespace (other than a Namespace itself).
    if !rt.namespaced && !info.namespace.is_empty() && info.resource != "namespaces" {
        return Err(ApiError::path_not_found());
    }
    let namespace = if rt.namespaced {
        info.namespace.as_str()
    } else {
        ""
    };
    let sub = info.subresource.as_str();
    if !sub.is_empty() && !rt.subresources.contains(&sub) {
        return Err(ApiError::path_not_found());
    }
    if rt.virtual_create_only {
        return match info.verb.as_str() {
            "create" => crate::reviews::create(cluster, &rt, ctx, decode_body(&ctx.headers, &body)?),
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource".to_string(),
            )),
        };
    }
    match (info.verb.as_str(), sub) {
        ("get", "") => get(cluster, &rt, namespace, &info.name, ctx),
        ("get", "status") => get(cluster, &rt, namespace, &info.name, ctx),
        ("get", "scale") => crate::scale::get(cluster, &rt, namespace, &info.name),
        ("get", "log") => crate::workloads::logs(cluster, namespace, &info.name, ctx),
        ("list", "") => list(cluster, &rt, namespace, ctx),
        ("watch", "") => super::watch::serve(cluster, rt.clone(), namespace, ctx).await,
        ("create", "") => create(cluster, &rt, namespace, ctx, decode_body(&ctx.headers, &body)?)
            .map_err(|e| decode_failure(&rt, e)),
        ("create", "token") => crate::tokens::token_request(cluster, namespace, &info.name, ctx, &body),
        ("update", "scale") => crate::scale::update(cluster, &rt, namespace, &info.name, ctx, &body),
        ("patch", "scale") => crate::scale::patch(cluster, &rt, namespace, &info.name, ctx, &body),
        ("update", "" | "status" | "finalize") => update(
            cluster,
            &rt,
            namespace,
            &info.name,
            sub,
            ctx,
            decode_body(&ctx.headers, &body)?,
        )
        .map_err(|e| decode_failure(&rt, e)),
        ("patch", "" | "status") => patch_object(cluster, &rt, namespace, &info.name, sub, ctx, &body),
        ("delete", "") => delete(cluster, &rt, namespace, &info.name, ctx, &body),
        ("deletecollection", "") => delete_collection(cluster, &rt, namespace, ctx, &body),
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// A create or update body that fails strict decoding is reported the way the apiserver's
/// decoder reports it (`KIND in version "V" cannot be handled as a KIND: strict decoding
/// error: …`); only patches surface the bare strict decoding error.
fn decode_failure(rt: &ResourceType, err: ApiError) -> ApiError {
    if err.code == 400 && err.message.starts_with("strict decoding error: ") {
        return ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {}",
            rt.version,
            err.message,
            kind = rt.kind
        ));
    }
    err
}

fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
    Key::new(&rt.key(), namespace, name)
}

/// Adds `apiVersion` and `kind`, which kube-apiserver always returns on single objects.
pub fn with_type(rt: &ResourceType, object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
    }
    object
}

fn get(cluster: &Cluster, rt: &ResourceType, namespace: &str, name: &str, ctx: &Ctx) -> ApiResult<Response> {
    let object = cluster
        .store
        .get(&key(rt, namespace, name))
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    let object = with_type(rt, &object);
    if ctx.wants_table() {
        return Ok(ok(&table::table(
            rt,
            &[object],
            ctx,
            &cluster.store.revision().to_string(),
        )));
    }
    Ok(ok(&object))
}

/// The parsed `labelSelector` and `fieldSelector` of a list or watch.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    field_paths: Vec<String>,
}

impl Filter {
    /// Parses the selectors, rejecting fields the resource cannot select on as apiserver does.
    pub fn from_ctx(rt: &ResourceType, ctx: &Ctx) -> ApiResult<Self> {
        let labels = match ctx.param("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.message().to_owned()))?)
            }
            None => None,
        };
        let fields = match ctx.param("fieldSelector").filter(|s| !s.is_empty()) {
            Some(s) => {
                Some(FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.message().to_owned()))?)
            }
            None => None,
        };
        let supported = kinds::selectable_fields(rt);
        let mut field_paths = Vec::new();
        if let Some(f) = &fields {
            for field in f.requirements().iter().map(|r| r.field.as_str()) {
                if !supported.iter().any(|s| s == field) {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {field}"
                    )));
                }
                field_paths.push(field.to_owned());
            }
        }
        Ok(Self {
            labels,
            fields,
            field_paths,
        })
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        if let Some(labels) = &self.labels {
            let map: BTreeMap<String, String> = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            if !labels.matches(&map) {
                return false;
            }
        }
        if let Some(fields) = &self.fields {
            let _ = &self.field_paths;
            return fields.matches(|field| kinds::field_value(object, field));
        }
        true
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

fn list(cluster: &Cluster, rt: &ResourceType, namespace: &str, ctx: &Ctx) -> ApiResult<Response> {
    let filter = Filter::from_ctx(rt, ctx)?;
    let limit = ctx
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let after = match ctx.param("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let decoded = decode_continue(token)?;
            if decoded.rv < cluster.store.compacted_revision() {
                return Err(continue_expired());
            }
            Some(decoded)
        }
        None => None,
    };
    let scope = (!namespace.is_empty()).then_some(namespace);
    // A continued list reads the snapshot its first page came from, as etcd serves it, and
    // starts right after the last key it returned.
    let start = after
        .as_ref()
        .map(|a| a.start.split_once('/').unwrap_or(("", a.start.as_str())));
    let page = cluster
        .store
        .list_page(
            &rt.key(),
            scope,
            after.as_ref().map(|a| a.rv),
            start,
            limit,
            |o| filter.matches(o),
        )
        .ok_or_else(continue_expired)?;
    let (items, list_rv, remaining) = (page.items, page.rv, page.remaining);
    let next = page.last.map(|k| format!("{}/{}", k.namespace, k.name));
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0
        && let Some(start) = next
    {
        metadata["continue"] = json!(encode_continue(&ContinueToken { rv: list_rv, start }));
        // apiserver counts the rest only for unfiltered lists: with a selector the number
        // left is unknown, so the field is omitted.
        if filter.labels.is_none() && filter.fields.is_none() {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    if ctx.wants_table() {
        let typed: Vec<Value> = items.iter().map(|i| with_type(rt, i)).collect();
        let mut t = table::table(rt, &typed, ctx, &list_rv.to_string());
        t["metadata"] = metadata;
        return Ok(ok(&t));
    }
    // Serialized from the stored values: typed lists of built-in kinds carry apiVersion and
    // kind only on the list itself.
    Ok(super::encode::ok_json(super::encode::list_body(
        rt,
        &metadata,
        &items,
        &cluster.json_cache,
    )))
}

fn continue_expired() -> ApiError {
    ApiError::new(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

fn encode_continue(token: &ContinueToken) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(token).unwrap_or_default())
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: illegal base64 data"))
}

/// Which operation a write is, for defaulting, validation and managedFields.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// A new object.
    Create,
    /// A replacement or patch of an existing object.
    Update,
}

/// Everything a write needs besides the objects.
pub struct WriteCtx<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// The type written.
    pub rt: &'a ResourceType,
    /// The subresource written (`status`, `finalize`) or empty.
    pub sub: &'a str,
    /// The field manager.
    pub manager: String,
    /// `fieldValidation`: Strict, Warn or Ignore.
    pub field_validation: String,
    /// Warnings to return in `Warning` headers.
    pub warnings: Vec<String>,
    /// For writes of RBAC objects by a user: who writes, and the RBAC state to check the write
    /// against (escalation prevention). Taken before the store lock, which it must not need.
    pub escalation: Option<(crate::rbac::UserInfo, crate::rbac::RbacSnapshot)>,
}

/// The field manager of a request: `fieldManager`, else the user agent's program name.
pub fn field_manager(ctx: &Ctx) -> String {
    if let Some(m) = ctx.param("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_owned();
    }
    ctx.headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

fn write_ctx<'a>(cluster: &'a Cluster, rt: &'a ResourceType, sub: &'a str, ctx: &Ctx) -> WriteCtx<'a> {
    let rbac_kind = rt.group == "rbac.authorization.k8s.io"
        && matches!(
            rt.kind.as_str(),
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        );
    let escalation = (rbac_kind && sub.is_empty() && !ctx.user.in_group(crate::rbac::SYSTEM_MASTERS_GROUP))
        .then(|| (ctx.user.clone(), cluster.rbac_snapshot()));
    WriteCtx {
        cluster,
        rt,
        sub,
        manager: field_manager(ctx),
        field_validation: ctx.param("fieldValidation").unwrap_or("Warn").to_owned(),
        warnings: Vec::new(),
        escalation,
    }
}

/// Schema knowledge for merging: a CRD's schema, or the built-in table.
pub struct TypeSchema<'a>(pub &'a ResourceType);

impl MergeSchema for TypeSchema<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        match &self.0.schema {
            Some(schema) => {
                if path.first() == Some(&"metadata") {
                    return builtin_list_type("", "ConfigMap", path, true);
                }
                schema.list_type(path)
            }
            None => builtin_list_type(&self.0.group, &self.0.kind, path, true),
        }
    }

    fn map_is_atomic(&self, path: &[&str]) -> bool {
        self.0.schema.as_ref().is_some_and(|s| s.map_is_atomic(path))
    }

    fn status_is_subresource(&self) -> bool {
        self.0.status_subresource
    }
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn metadata_mut(object: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    if !object.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Checks apiVersion/kind of a body against the endpoint, filling them when absent.
fn check_type(rt: &ResourceType, object: &mut Value, sub: &str) -> ApiResult<()> {
    let expected = rt.api_version();
    match object.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => object["apiVersion"] = json!(expected),
        Some(v) if v != expected && sub.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
        Some(_) => object["apiVersion"] = json!(expected),
    }
    match object.get("kind").and_then(Value::as_str) {
        None | Some("") => object["kind"] = json!(rt.kind),
        Some(k) if k != rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

/// Everything but metadata and status: a change here moves `generation`.
fn spec_part(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    o
}

/// The write pipeline every create, update and patch goes through: type checks, system
/// metadata, status subresource rules, defaulting, pruning, validation, generation and
/// managedFields. Returns what to store.
pub fn prepare(
    w: &mut WriteCtx<'_>,
    old: Option<&Value>,
    mut new: Value,
    fields_managed: bool,
) -> ApiResult<Write> {
    let rt = w.rt;
    check_type(rt, &mut new, w.sub)?;
    let name = meta_str(&new, "name").unwrap_or("").to_owned();
    let now = now_rfc3339();
    let op = if old.is_some() { Op::Update } else { Op::Create };

    if let Some(old) = old {
        let old_rv = meta_str(old, "resourceVersion").unwrap_or("");
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != old_rv
        {
            return Err(ApiError::stale(rt, &name));
        }
        // Status writes change only status; main-resource writes keep the stored status.
        if w.sub == "status" {
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if merged["status"].is_null()
                && let Some(m) = merged.as_object_mut()
            {
                m.remove("status");
            }
            // Status writers may still own managedFields entries.
            if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
                merged["metadata"]["managedFields"] = mf;
            }
            new = merged;
        } else if w.sub == "finalize" {
            let mut merged = old.clone();
            merged["spec"]["finalizers"] = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
            new = merged;
        } else if rt.status_subresource {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        let meta = metadata_mut(&mut new)?;
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old.get("metadata").and_then(|m| m.get(field)) {
                Some(v) => meta.insert(field.to_owned(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.insert("resourceVersion".into(), json!(old_rv));
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let old_f = finalizers(old);
            // apiserver names the offenders, sorted, in Go's %#v rendering of a []string.
            let mut extra: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !old_f.contains(f))
                .collect();
            extra.sort();
            extra.dedup();
            if !extra.is_empty() {
                let quoted: Vec<String> = extra.iter().map(|f| json!(f).to_string()).collect();
                let detail = format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    quoted.join(", ")
                );
                return Err(ApiError::invalid(
                    rt,
                    &name,
                    &format!("metadata.finalizers: {detail}"),
                    json!([{"reason": "FieldValueForbidden", "message": detail, "field": "metadata.finalizers"}]),
                ));
            }
        }
    } else {
        if !w.sub.is_empty() {
            return Err(ApiError::not_found(rt, &name));
        }
        if rt.status_subresource
            && rt.custom
            && let Some(m) = new.as_object_mut()
        {
            m.remove("status");
        }
        let meta = metadata_mut(&mut new)?;
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now));
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
        ] {
            meta.remove(field);
        }
        if rt.has_generation {
            meta.insert("generation".into(), json!(1));
        }
    }

    kinds::prepare(rt, op, old, &mut new, w.sub)?;

    if let Some(schema) = &rt.schema {
        let pruned = schema.prune(&mut new);
        if !pruned.is_empty() {
            match w.field_validation.as_str() {
                "Strict" => {
                    let list: Vec<String> = pruned
                        .iter()
                        .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        list.join(", ")
                    )));
                }
                "Ignore" => {}
                _ => w.warnings.extend(
                    pruned
                        .iter()
                        .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.'))),
                ),
            }
        }
        schema.default(&mut new);
        let validation = if w.sub == "status" {
            schema.validate_status(&new, old)
        } else {
            schema.validate_full(&new, old, &[])
        };
        w.warnings.extend(validation.warnings);
        let causes = validation.causes;
        if !causes.is_empty() {
            let message = crate::schema::render(&causes);
            let list: Vec<Value> = causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            return Err(ApiError::invalid(rt, &name, &message, json!(list)));
        }
    }
    kinds::validate(rt, op, old, &new)?;
    if let Some((user, rbac)) = &w.escalation {
        let mut typed = new.clone();
        typed["kind"] = json!(rt.kind);
        if let Err(denied) = crate::rbac::check_escalation(user, rbac, old, &typed) {
            return Err(ApiError::forbidden(rt, &name, &denied.0));
        }
    }

    if let (Some(old), true) = (old, rt.has_generation)
        && spec_part(old) != spec_part(&new)
    {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        new["metadata"]["generation"] = json!(generation);
    }

    if !fields_managed {
        let subresource = (!w.sub.is_empty()).then_some(w.sub);
        new = managed::update(
            old,
            &new,
            &w.manager,
            &TypeSchema(rt),
            &now,
            &rt.api_version(),
            subresource,
        );
    }

    if let Some(old) = old {
        // A no-op apart from managedFields timestamps is still a no-op, as in apiserver. A
        // change of ownership alone (a new manager applying values already there) is a change.
        if strip_times(old) == strip_times(&new) {
            return Ok(Write::Unchanged);
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&new).is_empty() {
            return Ok(Write::Delete);
        }
    }
    Ok(Write::Put(new))
}

fn strip_times(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(entries) = o
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for e in entries {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    o
}

/// The object's finalizers.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn respond_written(
    rt: &ResourceType,
    written: Written,
    created_new: bool,
    warnings: &[String],
) -> ApiResult<Response> {
    let object = match written {
        Written::Stored(o) | Written::Deleted(o) => o,
        Written::Unchanged(Some(o)) => o,
        Written::Unchanged(None) => return Err(ApiError::internal("write produced no object")),
    };
    let body = with_type(rt, &object);
    let mut response = if created_new { created(&body) } else { ok(&body) };
    add_warnings(&mut response, warnings);
    Ok(response)
}

fn add_warnings(response: &mut Response, warnings: &[String]) {
    for w in warnings {
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            response.headers_mut().append("warning", v);
        }
    }
}

/// Random suffix characters apiserver uses for generateName (no vowels, no confusables).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(prefix: &str) -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let suffix: String = bytes
        .iter()
        .take(5)
        .map(|b| SUFFIX_ALPHABET[usize::from(*b) % SUFFIX_ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Creates an object from a request.
pub fn create(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    ctx: &Ctx,
    body: Value,
) -> ApiResult<Response> {
    let mut w = write_ctx(cluster, rt, "", ctx);
    let (written, dry) = create_with(&mut w, namespace, body, ctx.dry_run())?;
    if let Some(object) = dry {
        return Ok(created(&with_type(rt, &object)));
    }
    respond_written(rt, written, true, &w.warnings)
}

/// Creates an object as a system controller (`manager`), the way kube-controller-manager does.
pub fn create_as(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    body: Value,
    manager: &str,
) -> ApiResult<Arc<Value>> {
    let mut w = WriteCtx {
        cluster,
        rt,
        sub: "",
        manager: manager.to_owned(),
        field_validation: "Ignore".to_owned(),
        warnings: Vec::new(),
        escalation: None,
    };
    match create_with(&mut w, namespace, body, false)?.0 {
        Written::Stored(o) => Ok(o),
        _ => Err(ApiError::internal("create stored nothing")),
    }
}

fn create_with(
    w: &mut WriteCtx<'_>,
    namespace: &str,
    mut body: Value,
    dry_run: bool,
) -> ApiResult<(Written, Option<Value>)> {
    let (cluster, rt) = (w.cluster, w.rt);
    let meta = metadata_mut(&mut body)?;
    let name = match meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None => match meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(prefix) => generated_name(prefix),
            None => {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                    json!([{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]),
                ));
            }
        },
    };
    // Admission runs before a generateName is expanded, so it names the prefix.
    let admission_name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or_else(|| meta.get("generateName").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    meta.insert("name".into(), json!(name));
    if rt.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(namespace));
            }
        }
        check_namespace_open(cluster, rt, namespace, &admission_name)?;
    } else {
        meta.remove("namespace");
    }
    kinds::validate_name(rt, &name)?;
    let k = key(rt, namespace, &name);
    if dry_run {
        if cluster.store.get(&k).is_some() {
            return Err(ApiError::already_exists(rt, &name));
        }
        let Write::Put(object) = prepare(w, None, body, false)? else {
            return Err(ApiError::internal("create produced no object"));
        };
        return Ok((Written::Unchanged(None), Some(object)));
    }
    // A create's object depends on nothing stored, so it is prepared (defaults, schema, CEL,
    // managedFields) before taking the store lock, which then covers only the existence check
    // and the insert: preparing under it serialized every write in the cluster behind it.
    if cluster.store.get(&k).is_some() {
        return Err(ApiError::already_exists(rt, &name));
    }
    let prepared = prepare(w, None, body, false)?;
    let written = cluster.store.write(&k, |current| {
        if current.is_some() {
            return Err(ApiError::already_exists(rt, &name));
        }
        Ok(prepared)
    })?;
    kinds::after_write(cluster, rt, &written);
    Ok((written, None))
}

fn check_namespace_open(cluster: &Cluster, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<()> {
    let ns = cluster
        .store
        .get(&Key::new("/namespaces", "", namespace))
        .ok_or_else(|| ApiError::namespace_not_found(namespace))?;
    if ns.pointer("/metadata/deletionTimestamp").is_some() {
        // NamespaceLifecycle admission answers with apierrors.NewForbidden(resource, name, …).
        let mut details = json!({"name": name, "kind": rt.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {namespace} is being terminated"), "field": "metadata.namespace"}]});
        if !rt.group.is_empty() {
            details["group"] = json!(rt.group);
        }
        return Err(ApiError {
            details: Some(details),
            ..ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    rt.qualified()
                ),
            )
        });
    }
    Ok(())
}

fn update(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    sub: &str,
    ctx: &Ctx,
    mut body: Value,
) -> ApiResult<Response> {
    let meta = metadata_mut(&mut body)?;
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {
            meta.insert("name".into(), json!(name));
        }
    }
    if rt.namespaced {
        if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|ns| ns != namespace)
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), json!(namespace));
    }
    let mut w = write_ctx(cluster, rt, sub, ctx);
    let k = key(rt, namespace, name);
    if ctx.dry_run() {
        let old = cluster
            .store
            .get(&k)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        return match prepare(&mut w, Some(&old), body, false)? {
            Write::Put(o) => Ok(ok(&with_type(rt, &o))),
            _ => Ok(ok(&with_type(rt, &old))),
        };
    }
    let mut created_new = false;
    let written = cluster.store.write(&k, |current| match current {
        Some(old) => prepare(&mut w, Some(old), body, false),
        None if kinds::allow_create_on_update(rt) && sub.is_empty() => {
            created_new = true;
            prepare(&mut w, None, body, false)
        }
        None => Err(ApiError::not_found(rt, name)),
    })?;
    kinds::after_write(cluster, rt, &written);
    respond_written(rt, written, created_new, &w.warnings)
}

fn patch_object(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    sub: &str,
    ctx: &Ctx,
    body: &Bytes,
) -> ApiResult<Response> {
    let content_type = ctx
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let patch_doc: Value = match content_type.as_str() {
        "application/apply-patch+yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {other}"
                ),
            ));
        }
    };
    if content_type == "application/strategic-merge-patch+json" && rt.custom {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    let force = ctx.flag("force");
    let is_apply = content_type == "application/apply-patch+yaml";
    if is_apply {
        if ctx.param("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        if !patch_doc.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the apply configuration must be an object",
            ));
        }
    } else if force {
        return Err(ApiError::bad_request(
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    let mut w = write_ctx(cluster, rt, sub, ctx);
    let k = key(rt, namespace, name);
    let apply_patch = |old: &Value| -> ApiResult<Value> {
        match content_type.as_str() {
            "application/merge-patch+json" => patch::try_merge_patch(old, &patch_doc).map_err(patch_error),
            "application/json-patch+json" => patch::json_patch(old, &patch_doc).map_err(patch_error),
            "application/strategic-merge-patch+json" => {
                let lists = |path: &[&str]| builtin_list_type(&rt.group, &rt.kind, path, false);
                patch::strategic_merge_patch(old, &patch_doc, &lists).map_err(patch_error)
            }
            _ => Ok(old.clone()),
        }
    };
    if is_apply {
        let mut applied = patch_doc.clone();
        check_type(rt, &mut applied, sub)?;
        if meta_str(&applied, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&applied, "name").unwrap_or("")
            )));
        }
        let existing = cluster.store.get(&k);
        if existing.is_none() && rt.namespaced {
            check_namespace_open(cluster, rt, namespace, name)?;
        }
        let run = |w: &mut WriteCtx<'_>, current: Option<&Value>| -> ApiResult<Write> {
            let base = match current {
                Some(c) => c.clone(),
                None => {
                    let mut fresh =
                        json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
                    if rt.namespaced {
                        fresh["metadata"]["namespace"] = json!(namespace);
                    }
                    fresh
                }
            };
            let now = now_rfc3339();
            let subresource = (!w.sub.is_empty()).then_some(w.sub);
            let live = current.map(|_| &base);
            let mut merged = managed::apply(
                live,
                &applied,
                &w.manager,
                force,
                &TypeSchema(rt),
                &now,
                &rt.api_version(),
                subresource,
            )
            .map_err(|conflicts| apply_conflict(rt, name, &conflicts))?;
            merged["metadata"]["name"] = json!(name);
            if rt.namespaced {
                merged["metadata"]["namespace"] = json!(namespace);
            }
            prepare(w, current, merged, true)
        };
        if ctx.dry_run() {
            return match run(&mut w, existing.as_deref())? {
                Write::Put(o) => Ok(ok(&with_type(rt, &o))),
                _ => existing
                    .map(|o| ok(&with_type(rt, &o)))
                    .ok_or_else(|| ApiError::not_found(rt, name)),
            };
        }
        let mut created_new = false;
        let written = cluster.store.write(&k, |current| {
            created_new = current.is_none();
            run(&mut w, current)
        })?;
        kinds::after_write(cluster, rt, &written);
        return respond_written(rt, written, created_new, &w.warnings);
    }
    if ctx.dry_run() {
        let old = cluster
            .store
            .get(&k)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let new = apply_patch(&old)?;
        return match prepare(&mut w, Some(&old), new, false)? {
            Write::Put(o) => Ok(ok(&with_type(rt, &o))),
            _ => Ok(ok(&with_type(rt, &old))),
        };
    }
    let patched = |w: &mut WriteCtx<'_>, old: &Value| -> ApiResult<Write> {
        let mut new = apply_patch(old)?;
        // A patch never carries a precondition unless it sets resourceVersion itself.
        if patch_doc.pointer("/metadata/resourceVersion").is_none()
            && let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("resourceVersion");
        }
        prepare(w, Some(old), new, false)
    };
    // Patched and prepared outside the store lock from the object as read, which holding it
    // keeps alive and so unique: stored only if the object is still that one. A write that
    // raced in, or a failure, is redone under the lock exactly as before. Patching under the
    // lock serialized every write in the cluster behind each patch.
    let snapshot = cluster.store.get(&k);
    let early = snapshot.as_deref().and_then(|old| patched(&mut w, old).ok());
    let written = cluster.store.write(&k, |current| {
        let old = current.ok_or_else(|| ApiError::not_found(rt, name))?;
        if let (Some(ready), Some(seen)) = (early, &snapshot)
            && std::ptr::eq(old, &**seen)
        {
            return Ok(ready);
        }
        w.warnings.clear();
        patched(&mut w, old)
    })?;
    kinds::after_write(cluster, rt, &written);
    respond_written(rt, written, false, &w.warnings)
}

fn patch_error(e: patch::PatchError) -> ApiError {
    let status = e.to_status();
    ApiError {
        code: e.code(),
        reason: e.reason(),
        message: status["message"].as_str().unwrap_or_default().to_owned(),
        details: status.get("details").cloned(),
    }
}

fn apply_conflict(rt: &ResourceType, name: &str, conflicts: &managed::Conflicts) -> ApiError {
    ApiError {
        code: conflicts.code(),
        reason: conflicts.reason(),
        message: conflicts.message(),
        details: Some(
            json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": conflicts.causes()}),
        ),
    }
}

/// The parsed DeleteOptions of a request, from its body or query.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    /// Background, Foreground or Orphan.
    pub propagation: Option<String>,
    /// Required uid.
    pub uid: Option<String>,
    /// Required resourceVersion.
    pub resource_version: Option<String>,
    /// `dryRun: ["All"]` in the body; kube-rs and client-go send it there, not in the query.
    pub dry_run: bool,
}

fn delete_options(ctx: &Ctx, body: &Bytes) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        propagation: ctx.param("propagationPolicy").map(str::to_owned),
        dry_run: ctx.dry_run(),
        ..DeleteOptions::default()
    };
    if ctx.param("orphanDependents") == Some("true") {
        opts.propagation = Some("Orphan".into());
    }
    if !body.is_empty() {
        let value = decode_body(&ctx.headers, body)?;
        if let Some(p) = value.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(p.to_owned());
        }
        if value.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            opts.propagation = Some("Orphan".into());
        }
        opts.uid = value
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        opts.resource_version = value
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let all = |v: &Value| v.as_array().is_some_and(|a| a.iter().any(|x| x == "All"));
        opts.dry_run |= value.get("dryRun").is_some_and(all);
    }
    if let Some(p) = &opts.propagation
        && !matches!(p.as_str(), "Background" | "Foreground" | "Orphan")
    {
        return Err(ApiError::bad_request(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        )));
    }
    Ok(opts)
}

/// Deletes one object: immediately, or by marking it when finalizers must run first.
pub fn delete_object(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
    dry_run: bool,
) -> ApiResult<(Written, bool)> {
    let k = key(rt, namespace, name);
    let now = now_rfc3339();
    let mut immediate = false;
    let mut decide = |current: Option<&Value>| -> ApiResult<Write> {
        let current = current.ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(uid) = &opts.uid
            && meta_str(current, "uid") != Some(uid.as_str())
        {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(current, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && meta_str(current, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(current, "resourceVersion").unwrap_or("")
                ),
            ));
        }
        let mut next = current.clone();
        let mut fins = finalizers(current);
        let policy = opts
            .propagation
            .clone()
            .unwrap_or_else(|| kinds::default_propagation(rt).to_owned());
        let extra = match policy.as_str() {
            "Foreground" => Some("foregroundDeletion"),
            "Orphan" => Some("orphan"),
            _ => None,
        };
        if let Some(f) = extra
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_owned());
        }
        let namespace_kind = rt.group.is_empty() && rt.plural == "namespaces";
        if fins.is_empty() && !namespace_kind {
            immediate = true;
            return Ok(Write::Delete);
        }
        if current.pointer("/metadata/deletionTimestamp").is_some() {
            if extra.is_some() && fins != finalizers(current) {
                next["metadata"]["finalizers"] = json!(fins);
                return Ok(Write::Put(next));
            }
            return Ok(Write::Unchanged);
        }
        next["metadata"]["deletionTimestamp"] = json!(now);
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if !fins.is_empty() {
            next["metadata"]["finalizers"] = json!(fins);
        }
        if namespace_kind {
            next["status"]["phase"] = json!("Terminating");
        }
        if rt.has_generation {
            let generation = next
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        Ok(Write::Put(next))
    };
    if dry_run {
        let current = cluster.store.get(&k);
        let result = decide(current.as_deref())?;
        let object = match result {
            Write::Put(o) => Arc::new(o),
            _ => current.ok_or_else(|| ApiError::not_found(rt, name))?,
        };
        return Ok((Written::Unchanged(Some(object)), immediate));
    }
    let written = cluster.store.write(&k, decide)?;
    kinds::after_write(cluster, rt, &written);
    Ok((written, immediate))
}

fn delete(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    ctx: &Ctx,
    body: &Bytes,
) -> ApiResult<Response> {
    let opts = delete_options(ctx, body)?;
    let (written, immediate) = delete_object(cluster, rt, namespace, name, &opts, opts.dry_run)?;
    let object = match written {
        Written::Stored(o) | Written::Deleted(o) | Written::Unchanged(Some(o)) => o,
        Written::Unchanged(None) => return Err(ApiError::not_found(rt, name)),
    };
    if immediate && !kinds::returns_deleted_object(rt) {
        let mut details = json!({"name": name, "kind": rt.plural, "uid": meta_str(&object, "uid")});
        if !rt.group.is_empty() {
            details["group"] = json!(rt.group);
        }
        return Ok(ok(&json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details,
        })));
    }
    Ok(ok(&with_type(rt, &object)))
}

fn delete_collection(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    ctx: &Ctx,
    body: &Bytes,
) -> ApiResult<Response> {
    let filter = Filter::from_ctx(rt, ctx)?;
    let opts = delete_options(ctx, body)?;
    let scope = (!namespace.is_empty()).then_some(namespace);
    let (objects, _) = cluster.store.list(&rt.key(), scope);
    let mut items = Vec::new();
    for (k, object) in objects {
        if !filter.matches(&object) {
            continue;
        }
        match delete_object(cluster, rt, &k.namespace, &k.name, &opts, opts.dry_run) {
            Ok((Written::Stored(o) | Written::Deleted(o) | Written::Unchanged(Some(o)), _)) => {
                items.push(with_type(rt, &o));
            }
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ok(&json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": cluster.store.revision().to_string()},
        "items": items,
    })))
}
