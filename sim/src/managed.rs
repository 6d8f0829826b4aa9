//! Server-side apply field management as kube-apiserver does it with structured-merge-diff: the
//! FieldsV1 field sets of `metadata.managedFields`, the apply merge with pruning and conflicts, and
//! the ownership that ordinary writes take, all over plain JSON objects and with no I/O.
//!
//! The pipeline follows kube-apiserver's field manager layer by layer:
//!
//! * manager identity is `(manager, operation, subresource)` for appliers and
//!   `(manager, operation, apiVersion, subresource)` for updaters, so one name can hold several
//!   entries; an empty manager name becomes `unknown`;
//! * `apiVersion`, `kind`, `metadata`, `metadata.name`, `namespace`, `uid`, `resourceVersion`,
//!   `generation`, `creationTimestamp`, `selfLink`, `clusterName` and `managedFields` are never
//!   owned;
//! * writes to the main resource neither own nor conflict on `status` (when the resource has a
//!   status subresource) and keep the live `status`; writes through the `status` subresource own
//!   and change only `status`;
//! * an entry's `time` moves only when the write changed the object; a no-op apply by a manager
//!   new to the object records it without a `time`, as kube-apiserver does
//!   (kubernetes/kubernetes#127938);
//! * an object that exists but has no managedFields first gets a `before-first-apply` entry that
//!   owns everything, and an update that resets managedFields (`[]` or `[{}]`) leaves them empty;
//! * at most ten Update entries survive; older ones are merged into `ancient-changes` per version;
//! * the manager `kubectl` upgrading from client-side apply may take fields whose values still
//!   match its `kubectl.kubernetes.io/last-applied-configuration` annotation, which server-side
//!   apply then keeps current.
//!
//! Known gaps: no conversion between API versions (entries recorded at another version are read
//! as if their paths were the same), maps are taken to be structs (so keys of
//! `additionalProperties` objects are not owned as items of their own), and objects created by an
//! Update own their new intermediate objects (`.` under `f:spec`) the way custom resources do,
//! where typed built-ins would not.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde_json::{Map, Value, json};

use crate::merge_keys::ListType;

/// The annotation in which `kubectl apply` (client side) keeps the configuration it last applied.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Beyond this many Update entries the oldest are folded into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// Real identities are JSON objects, so this placeholder can never collide with one.
const CURRENT_OPERATION: &str = "current-operation";
/// kube-apiserver drops the last-applied annotation rather than exceed the annotations limit.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// What field management needs to know of a kind's schema.
///
/// `path` is the field names from the object's root down to the node, list items skipped: the
/// containers of a Deployment are `["spec", "template", "spec", "containers"]` and their ports
/// `["spec", "template", "spec", "containers", "ports"]`.
pub trait MergeSchema {
    /// How the list at `path` merges; lists the schema does not describe are atomic in SMD.
    fn list_type(&self, path: &[&str]) -> ListType;

    /// Whether the object at `path` is `x-kubernetes-map-type: atomic` (owned and replaced whole).
    fn map_is_atomic(&self, _path: &[&str]) -> bool {
        false
    }

    /// The schema default of key field `key` of the list-map at `path`, used for items that omit
    /// it so they still match the defaulted live item. The provided answer is `"TCP"` for
    /// `protocol`, the one key default of built-in kinds (container and service ports); a custom
    /// resource's schema defaults should override it.
    fn list_key_default(&self, _path: &[&str], key: &str) -> Option<Value> {
        (key == "protocol").then(|| Value::String("TCP".to_owned()))
    }

    /// Whether the resource serves `status` as a subresource, which makes the main resource
    /// ignore `status` (a custom resource without `subresources.status` treats it as any field).
    fn status_is_subresource(&self) -> bool {
        true
    }
}

/// One step of a field path.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of an object: `f:name` in FieldsV1, `.name` in messages.
    Field(String),
    /// An item of a list-map by its key fields, sorted by name: `k:{"name":"web"}`, `[name="web"]`.
    Key(Vec<(String, Value)>),
    /// An item of a set by its value: `v:"x"`, `[="x"]`.
    Value(Value),
    /// An item of a list by position: `i:0`, `[0]`; read from FieldsV1 but never produced, since
    /// atomic lists are owned whole.
    Index(i64),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    fn fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let mut out = String::from("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    crate::gostr::json_string_into(name, &mut out);
                    out.push(':');
                    go_json_into(value, &mut out);
                }
                out.push('}');
                out
            }
            PathElement::Value(value) => {
                let mut out = String::from("v:");
                go_json_into(value, &mut out);
                out
            }
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// `Ok(None)` for element kinds this version does not know, which SMD drops silently.
    fn parse_fields_v1_key(key: &str) -> Result<Option<Self>, String> {
        let bytes = key.as_bytes();
        if bytes.len() < 2 {
            return Err("key must be 2 characters long:".to_owned());
        }
        if bytes[1] != b':' {
            return Err(format!("missing colon: {key}"));
        }
        // bytes[1] is ':' so bytes[0] is a one-byte character and 2 is a char boundary.
        let rest = key.get(2..).unwrap_or_default();
        let element = match bytes[0] {
            b'f' => PathElement::Field(rest.to_owned()),
            b'v' => PathElement::Value(serde_json::from_str(rest).map_err(|e| e.to_string())?),
            b'k' => match serde_json::from_str::<Value>(rest).map_err(|e| e.to_string())? {
                Value::Object(fields) => PathElement::Key(fields.into_iter().collect()),
                _ => return Err(format!("expected an object of key fields: {key}")),
            },
            b'i' => PathElement::Index(rest.parse().map_err(|e| format!("{e}: {key}"))?),
            _ => return Ok(None),
        };
        Ok(Some(element))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => cmp_key_fields(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => cmp_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", smd_to_string(value)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", smd_to_string(value)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A field path in SMD's notation: `.spec.containers[name="web"].image`.
pub fn path_to_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths: what one manager owns, as FieldsV1 encodes it.
///
/// A path is a member when the node itself is owned (a leaf, a list item, an atomic value);
/// children hold the owned paths below a node whether or not the node is a member too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a `fieldsV1` object (`{"f:spec":{"f:replicas":{}}}`).
    pub fn from_fields_v1(fields: &Value) -> Result<Self, String> {
        Ok(read_fields_v1(fields)?.0.unwrap_or_default())
    }

    /// Encodes the set as a `fieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    /// The fields an applied configuration sets, as its applier comes to own them.
    pub fn from_object(object: &Value, schema: &dyn MergeSchema) -> Result<Self, String> {
        Walker::new(schema).field_set(object)
    }

    /// Adds a path; the empty path is not a field and is ignored.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the path is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether the set has no member at any depth.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Every member path, in SMD's order: a node's members, then its children's paths.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for member in &self.members {
            let mut path = prefix.clone();
            path.push(member.clone());
            out.push(path);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    fn put_child(&mut self, pe: PathElement, child: FieldSet) {
        if !child.is_empty() {
            self.children.insert(pe, child);
        }
    }

    fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match self.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.put_child(pe.clone(), merged);
        }
        out
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                out.put_child(pe.clone(), child.intersection(theirs));
            }
        }
        out
    }

    /// Removes the other set's members, not what lies below them.
    fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let kept = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            out.put_child(pe.clone(), kept);
        }
        out
    }

    /// Removes the other set's members and everything below them.
    fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let kept = match other.children.get(pe) {
                Some(theirs) => child.recursive_difference(theirs),
                None => child.clone(),
            };
            out.put_child(pe.clone(), kept);
        }
        out
    }

    /// Makes every object field with owned fields below it a member too, so pruning can remove
    /// or keep the field as a whole. Every object counts as a struct here (see the module docs).
    fn ensure_named_fields_are_members(&self) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.clone(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if matches!(pe, PathElement::Field(_)) {
                out.members.insert(pe.clone());
            }
            out.put_child(pe.clone(), child.ensure_named_fields_are_members());
        }
        out
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for member in &self.members {
            if !self.children.contains_key(member) {
                out.insert(member.fields_v1_key(), Value::Object(Map::new()));
            }
        }
        for (pe, child) in &self.children {
            out.insert(
                pe.fields_v1_key(),
                Value::Object(child.emit(self.members.contains(pe))),
            );
        }
        out
    }
}

/// Reads one FieldsV1 node: its children (if any) and whether the node is itself a member.
fn read_fields_v1(node: &Value) -> Result<(Option<FieldSet>, bool), String> {
    let Value::Object(entries) = node else {
        return Err(format!("expected a fieldsV1 object, got {node}"));
    };
    let mut is_member = false;
    let mut set = FieldSet::new();
    let mut any = false;
    for (key, child) in entries {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::parse_fields_v1_key(key)? else {
            continue;
        };
        let (grandchildren, child_is_member) = read_fields_v1(child)?;
        if child_is_member {
            set.members.insert(pe.clone());
            any = true;
        }
        if let Some(grandchildren) = grandchildren {
            // Keys that differ only in number spelling (`v:1`, `v:1.0`) are one element.
            let merged = match set.children.get(&pe) {
                Some(existing) => existing.union(&grandchildren),
                None => grandchildren,
            };
            set.put_child(pe, merged);
            any = true;
        }
    }
    if !any {
        return Ok((None, true));
    }
    Ok((Some(set), is_member))
}

/// Whether a write was a create, an update or an apply, as recorded in `managedFields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write: create, update, merge/JSON/strategic patch.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// How the other manager wrote the field.
    pub operation: Operation,
    /// The API version of the other manager's entry.
    pub api_version: String,
    /// The subresource the other manager wrote through.
    pub subresource: Option<String>,
    /// The field, in SMD notation: `.spec.containers[name="web"].image`.
    pub path: String,
    /// The same field as path elements.
    pub elements: Vec<PathElement>,
}

impl Conflict {
    /// The manager as kube-apiserver describes it: `"kubectl"`, or for updaters
    /// `"kube-controller-manager" using apps/v1`, with ` with subresource "status"` when it wrote
    /// through one.
    pub fn manager_description(&self) -> String {
        let mut out = crate::gostr::quote(&self.manager);
        if let Some(subresource) = &self.subresource {
            out.push_str(&format!(" with subresource {}", crate::gostr::quote(subresource)));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn identity(&self) -> String {
        manager_id(
            &self.manager,
            self.operation,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }
}

/// Why kube-apiserver refuses an apply: nearly always fields other managers own whose values it
/// would change (409 Conflict), each listed in `conflicts`; rarely a configuration it rejects
/// outright, for which `conflicts` is empty and [`Conflicts::code`] says 400 or 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts {
    /// Each conflicting field, grouped by manager identity, fields in SMD order.
    pub conflicts: Vec<Conflict>,
    rejection: Option<Rejection>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    /// Another kind or version than the endpoint's, or `metadata.managedFields` set.
    BadRequest(String),
    /// The configuration or live object does not fit the schema (duplicate or keyless list-map
    /// items); kube-apiserver answers with an unclassified 500.
    Internal(String),
}

impl Conflicts {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            conflicts: Vec::new(),
            rejection: Some(Rejection::BadRequest(message.into())),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        Self {
            conflicts: Vec::new(),
            rejection: Some(Rejection::Internal(message.into())),
        }
    }

    /// The HTTP status kube-apiserver answers with: 409, or 400 / 500 for a rejection.
    pub fn code(&self) -> u16 {
        match self.rejection {
            None => 409,
            Some(Rejection::BadRequest(_)) => 400,
            Some(Rejection::Internal(_)) => 500,
        }
    }

    /// The Status `reason`: `Conflict`, `BadRequest`, or empty for the unclassified 500s.
    pub fn reason(&self) -> &'static str {
        match self.rejection {
            None => "Conflict",
            Some(Rejection::BadRequest(_)) => "BadRequest",
            Some(Rejection::Internal(_)) => "",
        }
    }

    /// kube-apiserver's message: `Apply failed with 1 conflict: conflict with "x" using apps/v1:
    /// .spec.replicas`, or for several `Apply failed with 2 conflicts: conflicts with "x":` then
    /// one `- <path>` line per field, managers in identity order, lines joined by newlines.
    pub fn message(&self) -> String {
        match &self.rejection {
            Some(Rejection::BadRequest(message) | Rejection::Internal(message)) => return message.clone(),
            None => {}
        }
        if let [only] = self.conflicts.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager_description(),
                only.path
            );
        }
        let mut by_manager: BTreeMap<String, (String, Vec<&str>)> = BTreeMap::new();
        for conflict in &self.conflicts {
            by_manager
                .entry(conflict.identity())
                .or_insert_with(|| (conflict.manager_description(), Vec::new()))
                .1
                .push(&conflict.path);
        }
        let mut lines = Vec::new();
        for (description, paths) in by_manager.values() {
            lines.push(format!("conflicts with {description}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }

    /// The Status `details.causes`: one `FieldManagerConflict` per field (none for a rejection).
    pub fn causes(&self) -> Vec<Value> {
        self.conflicts
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager_description()),
                    "field": c.path,
                })
            })
            .collect()
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Conflicts {}

/// Server-side apply of `applied` by `manager` onto `live` (`None` when the apply creates the
/// object), returning the object to persist with its new `metadata.managedFields`.
///
/// The configuration is merged into the live object; fields `manager` applied last time and no
/// longer sends are removed unless another manager owns them too; fields other managers own
/// whose values would change are conflicts unless `force`, which takes them over. `now` is the
/// request time (RFC 3339, whole seconds) and `api_version` the endpoint's group/version.
/// `subresource` is `None` for the main resource, where `status` is ignored and kept from
/// `live`, or `Some("status")`, where only `status` is applied and everything else stays as in
/// `live`. System metadata in the configuration (`resourceVersion`, `uid`, `generation`,
/// `creationTimestamp`, `selfLink`) is ignored, so preconditions on them are the caller's to
/// check; defaulting and validation of the result are the caller's too, as is the manager name
/// (kube-apiserver requires `fieldManager` on apply requests).
///
/// A refusal is usually conflicts (409); a configuration of another kind or version than the
/// endpoint's, or one carrying `metadata.managedFields`, is refused with 400, and one whose
/// list-map items are duplicated or keyless with 500, as kube-apiserver does; see
/// [`Conflicts::code`].
#[allow(clippy::too_many_arguments)] // the request's parts, in the order the callers hold them
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: &dyn MergeSchema,
    now: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> Result<Value, Conflicts> {
    check_applied(live, applied, api_version)?;
    let request = ApplyRequest {
        live,
        applied,
        manager,
        schema,
        now,
        api_version,
        subresource,
    };
    let outcome = match request.run(force) {
        // kubectl upgrading from client-side apply may take what its last-applied annotation
        // shows it set, where the live value still matches.
        Err(conflicts) if conflicts.rejection.is_none() && manager == "kubectl" => {
            match live.and_then(|l| allowed_from_last_applied(l, schema, api_version)) {
                Some(allowed) => {
                    let remaining: Vec<Conflict> = conflicts
                        .conflicts
                        .into_iter()
                        .filter(|c| !allowed.contains(&c.elements))
                        .collect();
                    if remaining.is_empty() {
                        request.run(true)
                    } else {
                        Err(Conflicts {
                            conflicts: remaining,
                            rejection: None,
                        })
                    }
                }
                None => Err(conflicts),
            }
        }
        other => other,
    };
    let mut object = outcome?;
    if manager == "kubectl" {
        refresh_last_applied(&mut object, applied);
    }
    Ok(object)
}

/// Field ownership for a write that is not an apply (create, update, merge/JSON/strategic
/// patch): `new` is the object about to be persisted and `old` the live one (`None` on create).
///
/// The fields the write added or changed (all of them on create) become owned by
/// `(manager, "Update", api_version, subresource)` and leave every other manager; removed fields
/// leave everyone; managers left with nothing are dropped. Returns `new` with its
/// `metadata.managedFields` replaced. On the main resource, managedFields sent in `new` are
/// honoured as kube-apiserver does (`[]` resets them); through a subresource they are ignored.
/// `manager` is the request's `fieldManager`, or, without one, the User-Agent prefix
/// kube-apiserver derives (see [`manager_from_user_agent`], e.g. `kubectl-edit`).
pub fn update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    schema: &dyn MergeSchema,
    now: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> Value {
    let scope = Scope::new(schema, subresource);
    let mut managed = if subresource.is_some() {
        old.and_then(|o| decode_managed(o).ok()).unwrap_or_default()
    } else {
        managed_from_request_or_live(old, new)
    };
    let mut object = new.clone();
    remove_managed_fields(&mut object);
    let existing = old.is_some_and(|o| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_some_and(|uid| !uid.is_empty())
    });
    // An existing object whose managedFields were reset stays untracked until the next apply.
    if managed.entries.is_empty() && existing {
        return object;
    }
    let old_body = old.map(without_managed_fields).unwrap_or_else(empty_object);
    let target = UpdateTarget {
        manager: non_empty_manager(manager),
        api_version,
        subresource,
        now,
    };
    let mut walker = Walker::new(schema);
    match update_core(&mut walker, &old_body, &object, &mut managed, &target, scope) {
        Ok(()) => {
            cap_update_managers(&mut managed);
            managed.encode_into(&mut object);
        }
        // kube-apiserver keeps the write but restores the previous managedFields.
        Err(_) => {
            if let Some(previous) = old.and_then(|o| o.pointer("/metadata/managedFields")) {
                set_managed_fields(&mut object, previous.clone());
            }
        }
    }
    object
}

/// The manager name kube-apiserver records for a request without `fieldManager`: the User-Agent
/// up to its first `/`, printable characters only, at most 128 bytes (`kubectl-edit/v1.31.0
/// (linux/amd64) kubernetes/abc` gives `kubectl-edit`).
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| crate::gostr::is_print(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The apply and update pipelines.

struct ApplyRequest<'a> {
    live: Option<&'a Value>,
    applied: &'a Value,
    manager: &'a str,
    schema: &'a dyn MergeSchema,
    now: &'a str,
    api_version: &'a str,
    subresource: Option<&'a str>,
}

impl ApplyRequest<'_> {
    fn run(&self, force: bool) -> Result<Value, Conflicts> {
        let scope = Scope::new(self.schema, self.subresource);
        let manager = non_empty_manager(self.manager);
        let mut w = Walker::new(self.schema);

        let mut config = self.applied.clone();
        strip_system_metadata(&mut config);
        scope.restrict_config(&mut config);
        w.validate(&config).map_err(|e| {
            Conflicts::internal(format!(
                "failed to create typed patch object ({}): {e}",
                object_gvknn(self.applied)
            ))
        })?;

        let live_body = self.live.map(without_managed_fields).unwrap_or_else(empty_object);
        w.field_set(&live_body).map_err(|e| {
            Conflicts::internal(format!(
                "failed to create typed live object ({}): {e}",
                object_gvknn(&live_body)
            ))
        })?;
        let mut managed = match self.live {
            Some(live) => decode_managed(live)
                .map_err(|e| Conflicts::internal(format!("failed to decode managed fields: {e}")))?,
            None => Managed::default(),
        };
        // Fields of an object nobody tracks yet belong to someone; without this entry the first
        // applier could never conflict with them.
        if self.live.is_some() && managed.entries.is_empty() {
            let target = UpdateTarget {
                manager: BEFORE_FIRST_APPLY,
                api_version: self.api_version,
                subresource: self.subresource,
                now: self.now,
            };
            update_core(&mut w, &empty_object(), &live_body, &mut managed, &target, scope).map_err(|e| {
                Conflicts::internal(format!("failed to create manager for existing fields: {e}"))
            })?;
        }

        let merged = w
            .merge(Some(&live_body), Some(&config))
            .map_err(|e| Conflicts::internal(format!("failed to merge config: {e}")))?;
        let id = manager_id(manager, Operation::Apply, "", self.subresource);
        let last_set = managed.entries.get(&id).map(|e| e.set.clone());
        let new_set = scope.filter(
            &w.field_set(&config)
                .map_err(|e| Conflicts::internal(format!("failed to get field set: {e}")))?,
        );
        let time = managed.entries.get(&id).and_then(|e| e.time.clone());
        managed.entries.insert(
            id.clone(),
            Entry {
                manager: manager.to_owned(),
                operation: Operation::Apply,
                api_version: self.api_version.to_owned(),
                subresource: self.subresource.map(str::to_owned),
                time,
                set: new_set,
            },
        );
        let pruned = prune(&mut w, merged, &managed, last_set)
            .map_err(|e| Conflicts::internal(format!("failed to prune fields: {e}")))?;
        resolve_ownership(&mut w, &live_body, &pruned, &mut managed, &id, force, scope)?;
        if let Some(entry) = managed.entries.get_mut(&id) {
            entry.set = strip_meta(&entry.set);
        }
        managed.entries.retain(|_, e| !e.set.is_empty());

        let result = scope.finish(&live_body, pruned);
        let mut object = if values_equal(&result, &live_body) {
            live_body
        } else {
            if let Some(entry) = managed.entries.get_mut(&id) {
                entry.time = Some(self.now.to_owned());
            }
            result
        };
        managed.encode_into(&mut object);
        Ok(object)
    }
}

struct UpdateTarget<'a> {
    manager: &'a str,
    api_version: &'a str,
    subresource: Option<&'a str>,
    now: &'a str,
}

/// SMD's Update followed by kube-apiserver's bookkeeping: what changed goes to the target entry
/// (merged with its earlier fields, time bumped), other managers lose it.
fn update_core(
    w: &mut Walker<'_>,
    old: &Value,
    new: &Value,
    managed: &mut Managed,
    target: &UpdateTarget<'_>,
    scope: Scope,
) -> Result<(), String> {
    let comparison =
        resolve_ownership(w, old, new, managed, CURRENT_OPERATION, true, scope).map_err(|e| e.to_string())?;
    let taken = strip_meta(&scope.filter(&comparison.modified.union(&comparison.added)));
    if taken.is_empty() {
        return Ok(());
    }
    let id = manager_id(
        target.manager,
        Operation::Update,
        target.api_version,
        target.subresource,
    );
    let entry = managed.entries.entry(id).or_insert_with(|| Entry {
        manager: target.manager.to_owned(),
        operation: Operation::Update,
        api_version: target.api_version.to_owned(),
        subresource: target.subresource.map(str::to_owned),
        time: None,
        set: FieldSet::new(),
    });
    entry.set = taken.union(&entry.set);
    entry.time = Some(target.now.to_owned());
    Ok(())
}

/// Compares `old` with `new` and takes what changed away from every manager but `workflow`:
/// changed or added fields are conflicts (refused unless `force`), removed fields just go.
fn resolve_ownership(
    w: &mut Walker<'_>,
    old: &Value,
    new: &Value,
    managed: &mut Managed,
    workflow: &str,
    force: bool,
    scope: Scope,
) -> Result<Comparison, Conflicts> {
    let comparison = w
        .compare(Some(old), Some(new))
        .map_err(|e| Conflicts::internal(format!("failed to compare objects: {e}")))?;
    let comparison = scope.filter_comparison(comparison);
    let changed = comparison.modified.union(&comparison.added);
    let conflicts: Vec<(String, FieldSet)> = managed
        .entries
        .iter()
        .filter(|(id, _)| id.as_str() != workflow)
        .map(|(id, e)| (id.clone(), e.set.intersection(&changed)))
        .filter(|(_, set)| !set.is_empty())
        .collect();
    if !force && !conflicts.is_empty() {
        let mut out = Vec::new();
        for (id, set) in &conflicts {
            let Some(entry) = managed.entries.get(id) else {
                continue;
            };
            for path in set.paths() {
                out.push(Conflict {
                    manager: entry.manager.clone(),
                    operation: entry.operation,
                    api_version: entry.api_version.clone(),
                    subresource: entry.subresource.clone(),
                    path: path_to_string(&path),
                    elements: path,
                });
            }
        }
        return Err(Conflicts {
            conflicts: out,
            rejection: None,
        });
    }
    for (id, set) in &conflicts {
        if let Some(entry) = managed.entries.get_mut(id) {
            entry.set = entry.set.difference(set);
        }
    }
    if !comparison.removed.is_empty() {
        for (id, entry) in managed.entries.iter_mut() {
            if id != workflow {
                entry.set = entry.set.difference(&comparison.removed);
            }
        }
    }
    managed.entries.retain(|_, e| !e.set.is_empty());
    Ok(comparison)
}

/// Removes from `merged` what the applier owned last time, no longer applies and nobody else
/// owns, the way SMD does: take out everything last applied, add back what anyone still owns,
/// then restore whatever was removed that the applier never owned.
fn prune(
    w: &mut Walker<'_>,
    merged: Value,
    managed: &Managed,
    last: Option<FieldSet>,
) -> Result<Value, String> {
    let Some(last) = last.filter(|s| !s.is_empty()) else {
        return Ok(merged);
    };
    let last = last.ensure_named_fields_are_members();
    let first_pass = w.remove_root(&merged, &last);
    let owned = managed
        .entries
        .values()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.set));
    let merged_set = w.field_set(&merged)?.ensure_named_fields_are_members();
    let keep = w
        .field_set(&first_pass)?
        .ensure_named_fields_are_members()
        .union(&owned.ensure_named_fields_are_members());
    let owned_back = w.remove_root(&merged, &merged_set.difference(&keep));
    let owned_back_set = w.field_set(&owned_back)?.ensure_named_fields_are_members();
    Ok(w.remove_root(
        &merged,
        &merged_set.difference(&owned_back_set).intersection(&last),
    ))
}

/// Which part of the object a write may touch, from kube-apiserver's reset fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Everything,
    WithoutStatus,
    StatusOnly,
}

impl Scope {
    fn new(schema: &dyn MergeSchema, subresource: Option<&str>) -> Self {
        match subresource {
            None if schema.status_is_subresource() => Scope::WithoutStatus,
            Some("status") => Scope::StatusOnly,
            _ => Scope::Everything,
        }
    }

    fn filter(self, set: &FieldSet) -> FieldSet {
        let status = PathElement::Field("status".to_owned());
        match self {
            Scope::Everything => set.clone(),
            Scope::WithoutStatus => {
                let mut exclude = FieldSet::new();
                exclude.members.insert(status);
                set.recursive_difference(&exclude)
            }
            Scope::StatusOnly => {
                let mut out = FieldSet::new();
                if set.members.contains(&status) {
                    out.members.insert(status.clone());
                }
                if let Some(child) = set.children.get(&status) {
                    out.put_child(status, child.clone());
                }
                out
            }
        }
    }

    fn filter_comparison(self, c: Comparison) -> Comparison {
        Comparison {
            added: self.filter(&c.added),
            modified: self.filter(&c.modified),
            removed: self.filter(&c.removed),
        }
    }

    /// Drops what the write may not set, so it neither merges nor counts as owned.
    fn restrict_config(self, config: &mut Value) {
        let Some(fields) = config.as_object_mut() else {
            return;
        };
        match self {
            Scope::Everything => {}
            Scope::WithoutStatus => {
                fields.remove("status");
            }
            Scope::StatusOnly => {
                fields.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
                if let Some(meta) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace"));
                }
            }
        }
    }

    /// What the registry strategy then persists: the live status on the main resource, the live
    /// everything-but-status through the status subresource.
    fn finish(self, live: &Value, merged: Value) -> Value {
        let (mut base, source) = match self {
            Scope::Everything => return merged,
            Scope::WithoutStatus => (merged, live),
            Scope::StatusOnly => (live.clone(), &merged),
        };
        if let Some(fields) = base.as_object_mut() {
            match source.get("status") {
                Some(status) => {
                    fields.insert("status".to_owned(), status.clone());
                }
                None => {
                    fields.remove("status");
                }
            }
        }
        base
    }
}

// ---------------------------------------------------------------------------------------------
// managedFields entries.

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    set: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut out = Map::new();
        if !self.manager.is_empty() {
            out.insert("manager".to_owned(), json!(self.manager));
        }
        out.insert("operation".to_owned(), json!(self.operation.as_str()));
        if !self.api_version.is_empty() {
            out.insert("apiVersion".to_owned(), json!(self.api_version));
        }
        if let Some(time) = &self.time {
            out.insert("time".to_owned(), json!(time));
        }
        out.insert("fieldsType".to_owned(), json!("FieldsV1"));
        out.insert("fieldsV1".to_owned(), self.set.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            out.insert("subresource".to_owned(), json!(subresource));
        }
        Value::Object(out)
    }
}

/// Entries by manager identity; a BTreeMap so iteration (and conflict order) is stable.
#[derive(Debug, Clone, Default)]
struct Managed {
    entries: BTreeMap<String, Entry>,
}

impl Managed {
    fn encode_into(&self, object: &mut Value) {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_by(|p, q| {
            p.operation
                .as_str()
                .cmp(q.operation.as_str())
                .then_with(|| entry_seconds(p).cmp(&entry_seconds(q)))
                .then_with(|| p.manager.cmp(&q.manager))
                .then_with(|| p.api_version.cmp(&q.api_version))
                .then_with(|| {
                    p.subresource
                        .as_deref()
                        .unwrap_or("")
                        .cmp(q.subresource.as_deref().unwrap_or(""))
                })
        });
        if entries.is_empty() {
            remove_managed_fields(object);
        } else {
            set_managed_fields(
                object,
                Value::Array(entries.into_iter().map(Entry::to_json).collect()),
            );
        }
    }
}

fn entry_seconds(entry: &Entry) -> i64 {
    entry.time.as_deref().and_then(unix_seconds).unwrap_or(0)
}

/// kube-apiserver's manager identity: the entry's JSON without time and fields, and without the
/// apiVersion for appliers so an applier keeps one entry across versions.
fn manager_id(manager: &str, operation: Operation, api_version: &str, subresource: Option<&str>) -> String {
    let mut out = String::from("{");
    if !manager.is_empty() {
        out.push_str("\"manager\":");
        crate::gostr::json_string_into(manager, &mut out);
        out.push(',');
    }
    out.push_str("\"operation\":\"");
    out.push_str(operation.as_str());
    out.push('"');
    if operation == Operation::Update && !api_version.is_empty() {
        out.push_str(",\"apiVersion\":");
        crate::gostr::json_string_into(api_version, &mut out);
    }
    if let Some(subresource) = subresource.filter(|s| !s.is_empty()) {
        out.push_str(",\"subresource\":");
        crate::gostr::json_string_into(subresource, &mut out);
    }
    out.push('}');
    out
}

fn non_empty_manager(manager: &str) -> &str {
    if manager.is_empty() { "unknown" } else { manager }
}

fn decode_managed(object: &Value) -> Result<Managed, String> {
    decode_entries(object.pointer("/metadata/managedFields"))
}

fn decode_entries(list: Option<&Value>) -> Result<Managed, String> {
    let mut managed = Managed::default();
    let items = match list {
        None | Some(Value::Null) => return Ok(managed),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("managedFields must be a list, got {other}")),
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(e) = item else {
            return Err(format!("managed fields entry {i} is not an object"));
        };
        let text = |key: &str| e.get(key).and_then(Value::as_str).unwrap_or("");
        let operation = match text("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".to_owned()),
        };
        if text("apiVersion").is_empty() {
            return Err("apiVersion must not be empty".to_owned());
        }
        match text("fieldsType") {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {} in managed fields entry {i}",
                    crate::gostr::quote(other)
                ));
            }
        }
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(fields) => FieldSet::from_fields_v1(fields).map_err(|err| {
                format!("error decoding versioned set of entry {i}: error decoding set: {err}")
            })?,
        };
        let entry = Entry {
            manager: text("manager").to_owned(),
            operation,
            api_version: text("apiVersion").to_owned(),
            subresource: Some(text("subresource"))
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            time: e.get("time").and_then(Value::as_str).map(str::to_owned),
            set,
        };
        let id = manager_id(
            &entry.manager,
            entry.operation,
            &entry.api_version,
            entry.subresource.as_deref(),
        );
        managed.entries.insert(id, entry);
    }
    Ok(managed)
}

/// The entries an update starts from: those the request carries when valid and non-empty
/// (clients may write managedFields), none when it resets them, else the live object's.
fn managed_from_request_or_live(old: Option<&Value>, new: &Value) -> Managed {
    let requested = new.pointer("/metadata/managedFields");
    if let Some(Value::Array(items)) = requested {
        let reset = match items.as_slice() {
            [] => true,
            [only] => only.as_object().is_some_and(|o| o.values().all(is_zero_value)),
            _ => false,
        };
        if reset {
            return Managed::default();
        }
    }
    match decode_entries(requested) {
        Ok(managed) if !managed.entries.is_empty() => managed,
        _ => old.and_then(|o| decode_managed(o).ok()).unwrap_or_default(),
    }
}

fn is_zero_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Folds the oldest Update entries into one `ancient-changes` entry per API version until ten
/// remain, as kube-apiserver's cap does.
fn cap_update_managers(managed: &mut Managed) {
    let mut updaters: Vec<(i64, String)> = managed
        .entries
        .iter()
        .filter(|(_, e)| e.operation == Operation::Update)
        .map(|(id, e)| (entry_seconds(e), id.clone()))
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort();
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, String> = BTreeMap::new();
    for (_, id) in updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managed.entries.get(&id).cloned() else {
            continue;
        };
        let bucket = manager_id(ANCIENT_CHANGES, Operation::Update, &entry.api_version, None);
        if bucket == id {
            continue;
        }
        let Some(first) = first_of_version.get(&entry.api_version).cloned() else {
            first_of_version.insert(entry.api_version.clone(), id);
            continue;
        };
        if !managed.entries.contains_key(&bucket)
            && let Some(oldest) = managed.entries.remove(&first)
        {
            managed.entries.insert(
                bucket.clone(),
                Entry {
                    manager: ANCIENT_CHANGES.to_owned(),
                    operation: Operation::Update,
                    api_version: entry.api_version.clone(),
                    subresource: None,
                    time: oldest.time,
                    set: oldest.set,
                },
            );
        }
        if let Some(target) = managed.entries.get_mut(&bucket) {
            target.set = entry.set.union(&target.set);
            target.time = entry.time.clone();
        }
        managed.entries.remove(&id);
        remaining -= 1;
    }
}

/// What nobody owns: identity, bookkeeping and the managedFields themselves.
fn strip_meta(set: &FieldSet) -> FieldSet {
    let mut strip = FieldSet::new();
    for root in ["apiVersion", "kind", "metadata"] {
        strip.insert(&[PathElement::Field(root.to_owned())]);
    }
    for field in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        strip.insert(&[
            PathElement::Field("metadata".to_owned()),
            PathElement::Field(field.to_owned()),
        ]);
    }
    set.difference(&strip)
}

/// The registry resets these from the live object whatever the configuration says.
fn strip_system_metadata(config: &mut Value) {
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(field);
        }
    }
}

fn check_applied(live: Option<&Value>, applied: &Value, api_version: &str) -> Result<(), Conflicts> {
    let Value::Object(config) = applied else {
        return Err(Conflicts::bad_request(
            "error decoding patch: an apply configuration must be a JSON or YAML object".to_owned(),
        ));
    };
    let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or("");
    let live_kind = live.and_then(|l| l.get("kind")).and_then(Value::as_str);
    if text("apiVersion") != api_version || live_kind.is_some_and(|k| k != text("kind")) {
        return Err(Conflicts::bad_request(format!(
            "invalid object type: {}",
            gvk_string(text("apiVersion"), text("kind"))
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(Conflicts::bad_request(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    Ok(())
}

fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

fn object_gvknn(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    format!(
        "{}/{}; {}",
        text("/metadata/namespace"),
        text("/metadata/name"),
        gvk_string(text("/apiVersion"), text("/kind"))
    )
}

/// The fields whose last-applied value still matches the live object: what kubectl may take
/// over from its own client-side apply without forcing.
fn allowed_from_last_applied(live: &Value, schema: &dyn MergeSchema, api_version: &str) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let last: Value = serde_json::from_str(text).ok()?;
    let has = |key: &str| {
        last.get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !has("kind") || last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let mut w = Walker::new(schema);
    w.validate(&last).ok()?;
    let set = w.field_set(&last).ok()?;
    let differences = w.compare(Some(&last), Some(&without_managed_fields(live))).ok()?;
    Some(
        set.difference(&differences.modified)
            .difference(&differences.added)
            .difference(&differences.removed),
    )
}

/// Keeps an existing last-applied annotation in step with what kubectl now applies server-side,
/// so a later client-side apply computes its patch from the right base.
fn refresh_last_applied(object: &mut Value, applied: &Value) {
    let present = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !present {
        return;
    }
    let mut config = applied.clone();
    if let Some(annotations) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let mut encoded = String::new();
    go_json_into(&config, &mut encoded);
    encoded.push('\n');
    let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(encoded));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len))
        .sum();
    if size > MAX_ANNOTATIONS_BYTES {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn without_managed_fields(object: &Value) -> Value {
    let mut out = object.clone();
    remove_managed_fields(&mut out);
    out
}

fn remove_managed_fields(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

fn set_managed_fields(object: &mut Value, entries: Value) {
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    let meta = fields.entry("metadata").or_insert_with(empty_object);
    if !meta.is_object() {
        *meta = empty_object();
    }
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("managedFields".to_owned(), entries);
    }
}

// ---------------------------------------------------------------------------------------------
// Walking objects with the schema: field sets, validation, merge, comparison, removal.

#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

/// How a pair of values is walked: a missing or null side takes the other side's shape.
enum Shapes {
    Maps,
    Lists,
    Scalars,
    Mismatch,
}

fn shapes(l: Option<&Value>, r: Option<&Value>) -> Shapes {
    let is_map = |v: Option<&Value>| matches!(v, Some(Value::Object(_)));
    let is_list = |v: Option<&Value>| matches!(v, Some(Value::Array(_)));
    let is_nullish = |v: Option<&Value>| matches!(v, None | Some(Value::Null));
    if is_map(l) || is_map(r) {
        if (is_map(l) || is_nullish(l)) && (is_map(r) || is_nullish(r)) {
            Shapes::Maps
        } else {
            Shapes::Mismatch
        }
    } else if is_list(l) || is_list(r) {
        if (is_list(l) || is_nullish(l)) && (is_list(r) || is_nullish(r)) {
            Shapes::Lists
        } else {
            Shapes::Mismatch
        }
    } else {
        Shapes::Scalars
    }
}

fn is_empty_map(m: Option<&Map<String, Value>>) -> bool {
    m.is_none_or(Map::is_empty)
}

struct Walker<'a> {
    schema: &'a dyn MergeSchema,
    names: Vec<String>,
    path: Vec<PathElement>,
}

impl<'a> Walker<'a> {
    fn new(schema: &'a dyn MergeSchema) -> Self {
        Self {
            schema,
            names: Vec::new(),
            path: Vec::new(),
        }
    }

    fn enter_field(&mut self, name: &str) {
        self.names.push(name.to_owned());
        self.path.push(PathElement::Field(name.to_owned()));
    }

    fn leave_field(&mut self) {
        self.names.pop();
        self.path.pop();
    }

    fn name_refs(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    fn list_type(&self) -> ListType {
        match self.schema.list_type(&self.name_refs()) {
            // A list-map without keys can only be told apart by value, like a set.
            ListType::Map(keys) if keys.is_empty() => ListType::Set,
            other => other,
        }
    }

    fn map_is_atomic(&self) -> bool {
        !self.names.is_empty() && self.schema.map_is_atomic(&self.name_refs())
    }

    fn located(&self, message: impl fmt::Display) -> String {
        if self.path.is_empty() {
            message.to_string()
        } else {
            format!("{}: {message}", path_to_string(&self.path))
        }
    }

    fn item_pe(&self, list_type: &ListType, item: &Value) -> Result<PathElement, String> {
        match list_type {
            ListType::Map(keys) => {
                let Value::Object(fields) = item else {
                    return Err(if item.is_null() {
                        "associative list with keys may not have a null element".to_owned()
                    } else {
                        "associative list with keys may not have non-map elements".to_owned()
                    });
                };
                let mut key = Vec::new();
                for name in keys {
                    if let Some(value) = fields.get(name) {
                        key.push((name.clone(), value.clone()));
                    } else if let Some(default) = self.schema.list_key_default(&self.name_refs(), name) {
                        key.push((name.clone(), default));
                    }
                }
                if key.is_empty() {
                    let quoted: Vec<String> = keys.iter().map(|k| crate::gostr::quote(k)).collect();
                    return Err(format!(
                        "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                        quoted.join(" ")
                    ));
                }
                key.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(key))
            }
            _ => match item {
                Value::Object(_) => {
                    Err("associative list without keys has an element that's a map type".to_owned())
                }
                Value::Array(_) => Err("not supported: associative list with lists as elements".to_owned()),
                Value::Null => {
                    Err("associative list without keys has an element that's an explicit null".to_owned())
                }
                scalar => Ok(PathElement::Value(scalar.clone())),
            },
        }
    }

    fn item_pes(&self, list_type: &ListType, items: &[Value]) -> Result<Vec<PathElement>, String> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                self.item_pe(list_type, item)
                    .map_err(|e| self.located(format!("element {i}: {e}")))
            })
            .collect()
    }

    /// Checks what SMD checks of an applied configuration: list items identifiable, no duplicates.
    fn validate(&mut self, value: &Value) -> Result<(), String> {
        match value {
            Value::Object(fields) if !self.map_is_atomic() => {
                for (name, child) in fields {
                    self.enter_field(name);
                    let result = self.validate(child);
                    self.leave_field();
                    result?;
                }
            }
            Value::Array(items) => {
                let list_type = self.list_type();
                if matches!(list_type, ListType::Atomic) {
                    return Ok(());
                }
                let pes = self.item_pes(&list_type, items)?;
                let mut seen = BTreeSet::new();
                for (pe, item) in pes.into_iter().zip(items) {
                    if !seen.insert(pe.clone()) {
                        return Err(self.located(format!("duplicate entries for key {pe}")));
                    }
                    self.path.push(pe);
                    let result = self.validate(item);
                    self.path.pop();
                    result?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn field_set(&mut self, value: &Value) -> Result<FieldSet, String> {
        let mut out = FieldSet::new();
        self.collect_fields(value, &mut out)?;
        Ok(out)
    }

    /// SMD's ToFieldSet: leaves, list items, atomic values, and null or empty objects are owned;
    /// an object with fields is only a path to them.
    fn collect_fields(&mut self, value: &Value, out: &mut FieldSet) -> Result<(), String> {
        match value {
            Value::Object(_) if self.map_is_atomic() => out.insert(&self.path),
            Value::Object(fields) => {
                for (name, child) in fields {
                    self.enter_field(name);
                    let result = self.collect_fields(child, out);
                    if child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                        out.insert(&self.path);
                    }
                    self.leave_field();
                    result?;
                }
            }
            Value::Array(items) => {
                let list_type = self.list_type();
                if matches!(list_type, ListType::Atomic) {
                    out.insert(&self.path);
                    return Ok(());
                }
                let pes = self.item_pes(&list_type, items)?;
                let mut counts: BTreeMap<&PathElement, usize> = BTreeMap::new();
                for pe in &pes {
                    *counts.entry(pe).or_default() += 1;
                }
                // Duplicated items (tolerated in live objects) are owned as one opaque item.
                for (pe, count) in &counts {
                    if *count > 1 {
                        self.path.push((*pe).clone());
                        out.insert(&self.path);
                        self.path.pop();
                    }
                }
                for (pe, item) in pes.iter().zip(items) {
                    if counts.get(pe).copied().unwrap_or_default() > 1 {
                        continue;
                    }
                    self.path.push(pe.clone());
                    let result = self.collect_fields(item, out);
                    out.insert(&self.path);
                    self.path.pop();
                    result?;
                }
            }
            _ => out.insert(&self.path),
        }
        Ok(())
    }

    /// SMD's merge of an applied configuration (`rhs`) into the live object (`lhs`).
    fn merge(&mut self, lhs: Option<&Value>, rhs: Option<&Value>) -> Result<Value, String> {
        let (l, r) = match (lhs, rhs) {
            (Some(l), Some(r)) => (l, r),
            (Some(only), None) | (None, Some(only)) => return Ok(only.clone()),
            (None, None) => return Ok(Value::Null),
        };
        match shapes(Some(l), Some(r)) {
            Shapes::Maps => {
                let lm = l.as_object();
                let rm = r.as_object();
                if self.map_is_atomic() || (is_empty_map(lm) && is_empty_map(rm)) {
                    return Ok(r.clone());
                }
                let keys: BTreeSet<&String> = lm.into_iter().chain(rm).flat_map(Map::keys).collect();
                let mut out = Map::new();
                for key in keys {
                    self.enter_field(key);
                    let merged = self.merge(lm.and_then(|m| m.get(key)), rm.and_then(|m| m.get(key)));
                    self.leave_field();
                    out.insert(key.clone(), merged?);
                }
                Ok(Value::Object(out))
            }
            Shapes::Lists => {
                let ll = l.as_array().map(Vec::as_slice).unwrap_or_default();
                let rl = r.as_array().map(Vec::as_slice).unwrap_or_default();
                let list_type = self.list_type();
                if matches!(list_type, ListType::Atomic) || (ll.is_empty() && rl.is_empty()) {
                    return Ok(r.clone());
                }
                self.merge_lists(&list_type, ll, rl)
            }
            Shapes::Scalars | Shapes::Mismatch => Ok(r.clone()),
        }
    }

    /// Keeps live items in place, slots applied items in their applied order relative to the
    /// items both sides share, and appends the rest, exactly as SMD orders them.
    fn merge_lists(&mut self, list_type: &ListType, ll: &[Value], rl: &[Value]) -> Result<Value, String> {
        let rhs_pes = self.item_pes(list_type, rl)?;
        let lhs_pes = self.item_pes(list_type, ll)?;
        let mut observed_rhs: BTreeMap<&PathElement, &Value> = BTreeMap::new();
        for (pe, item) in rhs_pes.iter().zip(rl) {
            if observed_rhs.insert(pe, item).is_some() {
                return Err(self.located(format!("duplicate entries for key {pe}")));
            }
        }
        // Duplicated live items are not merged item by item: they are replaced by the applied one.
        let mut observed_lhs: BTreeMap<&PathElement, Option<&Value>> = BTreeMap::new();
        for (pe, item) in lhs_pes.iter().zip(ll) {
            observed_lhs
                .entry(pe)
                .and_modify(|v| *v = None)
                .or_insert(Some(item));
        }
        let lhs_of =
            |pe: &PathElement| -> Option<&Value> { observed_lhs.get(pe).map(|v| v.unwrap_or(&Value::Null)) };
        let mut shared: VecDeque<&PathElement> = rhs_pes
            .iter()
            .filter(|pe| observed_lhs.contains_key(*pe))
            .collect();
        let mut next_shared = shared.pop_front();
        let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(ll.len().max(rl.len()));
        let (mut li, mut ri) = (0, 0);
        while li < lhs_pes.len() || ri < rhs_pes.len() {
            if let (Some(lpe), Some(rpe)) = (lhs_pes.get(li), rhs_pes.get(ri)) {
                if lpe == rpe {
                    merged_rhs.insert(lpe);
                    out.push(self.merge_item(lpe, lhs_of(lpe), rl.get(ri))?);
                    li += 1;
                    ri += 1;
                    next_shared = shared.pop_front();
                    continue;
                }
                if observed_rhs.contains_key(lpe) && next_shared.is_some_and(|n| n != lpe) {
                    li += 1;
                    continue;
                }
            }
            if let Some(lpe) = lhs_pes.get(li) {
                if !observed_rhs.contains_key(lpe) {
                    out.push(self.merge_item(lpe, ll.get(li), None)?);
                    li += 1;
                    continue;
                } else if merged_rhs.contains(lpe) {
                    li += 1;
                }
            }
            if let Some(rpe) = rhs_pes.get(ri) {
                merged_rhs.insert(rpe);
                out.push(self.merge_item(rpe, lhs_of(rpe), rl.get(ri))?);
                ri += 1;
                if next_shared == Some(rpe) {
                    next_shared = shared.pop_front();
                }
            }
        }
        Ok(Value::Array(out))
    }

    fn merge_item(
        &mut self,
        pe: &PathElement,
        l: Option<&Value>,
        r: Option<&Value>,
    ) -> Result<Value, String> {
        self.path.push(pe.clone());
        let merged = self.merge(l, r);
        self.path.pop();
        merged
    }

    /// SMD's Compare of `l` (before) with `r` (after).
    fn compare(&mut self, l: Option<&Value>, r: Option<&Value>) -> Result<Comparison, String> {
        let mut out = Comparison::default();
        self.compare_into(l, r, &mut out)?;
        Ok(out)
    }

    fn compare_into(
        &mut self,
        l: Option<&Value>,
        r: Option<&Value>,
        c: &mut Comparison,
    ) -> Result<(), String> {
        match shapes(l, r) {
            Shapes::Maps => {
                let lm = l.and_then(Value::as_object);
                let rm = r.and_then(Value::as_object);
                if self.map_is_atomic() || (is_empty_map(lm) && is_empty_map(rm)) {
                    self.compare_leaf(l, r, c);
                    return Ok(());
                }
                self.compare_maps(lm, rm, c)?;
                self.compare_presence(l, r, c);
            }
            Shapes::Lists => {
                let ll = l.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                let rl = r.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                let list_type = self.list_type();
                if matches!(list_type, ListType::Atomic) || (ll.is_empty() && rl.is_empty()) {
                    self.compare_leaf(l, r, c);
                    return Ok(());
                }
                self.compare_lists(&list_type, ll, rl, c)?;
                self.compare_presence(l, r, c);
            }
            Shapes::Scalars => self.compare_leaf(l, r, c),
            Shapes::Mismatch => {
                // The value changed kind: it is modified, and what hung below the old or new
                // container went or came with it.
                self.compare_leaf(l, r, c);
                for (side, before) in [(l, true), (r, false)] {
                    match side {
                        Some(Value::Object(m)) if !self.map_is_atomic() => {
                            if before {
                                self.compare_maps(Some(m), None, c)?;
                            } else {
                                self.compare_maps(None, Some(m), c)?;
                            }
                        }
                        Some(Value::Array(items)) => {
                            let list_type = self.list_type();
                            if !matches!(list_type, ListType::Atomic) {
                                if before {
                                    self.compare_lists(&list_type, items, &[], c)?;
                                } else {
                                    self.compare_lists(&list_type, &[], items, c)?;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn compare_leaf(&self, l: Option<&Value>, r: Option<&Value>, c: &mut Comparison) {
        match (l, r) {
            (None, _) => c.added.insert(&self.path),
            (_, None) => c.removed.insert(&self.path),
            (Some(a), Some(b)) if !values_equal(a, b) => c.modified.insert(&self.path),
            _ => {}
        }
    }

    fn compare_presence(&self, l: Option<&Value>, r: Option<&Value>, c: &mut Comparison) {
        if l.is_none() {
            c.added.insert(&self.path);
        } else if r.is_none() {
            c.removed.insert(&self.path);
        }
    }

    fn compare_maps(
        &mut self,
        lm: Option<&Map<String, Value>>,
        rm: Option<&Map<String, Value>>,
        c: &mut Comparison,
    ) -> Result<(), String> {
        let keys: BTreeSet<&String> = lm.into_iter().chain(rm).flat_map(Map::keys).collect();
        for key in keys {
            self.enter_field(key);
            let result = self.compare_into(lm.and_then(|m| m.get(key)), rm.and_then(|m| m.get(key)), c);
            self.leave_field();
            result?;
        }
        Ok(())
    }

    fn compare_lists(
        &mut self,
        list_type: &ListType,
        ll: &[Value],
        rl: &[Value],
        c: &mut Comparison,
    ) -> Result<(), String> {
        let lhs_pes = self.item_pes(list_type, ll)?;
        let rhs_pes = self.item_pes(list_type, rl)?;
        let mut order: Vec<&PathElement> = Vec::new();
        let mut lhs: BTreeMap<&PathElement, Vec<&Value>> = BTreeMap::new();
        for (pe, item) in lhs_pes.iter().zip(ll) {
            let items = lhs.entry(pe).or_default();
            if items.is_empty() {
                order.push(pe);
            }
            items.push(item);
        }
        let mut rhs: BTreeMap<&PathElement, Vec<&Value>> = BTreeMap::new();
        for (pe, item) in rhs_pes.iter().zip(rl) {
            let items = rhs.entry(pe).or_default();
            if items.is_empty() && !lhs.contains_key(pe) {
                order.push(pe);
            }
            items.push(item);
        }
        for pe in order {
            let before = lhs.get(pe).map(Vec::as_slice).unwrap_or_default();
            let after = rhs.get(pe).map(Vec::as_slice).unwrap_or_default();
            self.path.push(pe.clone());
            let result = if before.len() <= 1 && after.len() <= 1 {
                self.compare_into(before.first().copied(), after.first().copied(), c)
            } else if before.len() >= 2 && after.len() >= 2 {
                // Duplicates on both sides compare as one opaque item.
                let same =
                    before.len() == after.len() && before.iter().zip(after).all(|(a, b)| values_equal(a, b));
                if !same {
                    c.modified.insert(&self.path);
                }
                Ok(())
            } else if before.len() >= 2 {
                let result = match after.first() {
                    Some(first) => self.compare_into(None, Some(first), c),
                    None => Ok(()),
                };
                c.removed.insert(&self.path);
                result
            } else {
                let result = match before.first() {
                    Some(first) => self.compare_into(Some(first), None, c),
                    None => Ok(()),
                };
                c.added.insert(&self.path);
                result
            };
            self.path.pop();
            result?;
        }
        Ok(())
    }

    /// `value` without the members of `set` (and what lies below them); like SMD, an object or
    /// list emptied this way becomes null.
    fn remove_root(&mut self, value: &Value, set: &FieldSet) -> Value {
        match self.remove_items(value, set) {
            Value::Null => empty_object(),
            other => other,
        }
    }

    fn remove_items(&mut self, value: &Value, set: &FieldSet) -> Value {
        match value {
            Value::Object(fields) => {
                if fields.is_empty() || self.map_is_atomic() {
                    return Value::Null;
                }
                let mut out = Map::new();
                for (name, child) in fields {
                    let pe = PathElement::Field(name.clone());
                    if set.members.contains(&pe) {
                        continue;
                    }
                    let kept = match set.children.get(&pe) {
                        Some(below) => {
                            self.enter_field(name);
                            let kept = self.remove_items(child, below);
                            self.leave_field();
                            kept
                        }
                        None => child.clone(),
                    };
                    out.insert(name.clone(), kept);
                }
                if out.is_empty() {
                    Value::Null
                } else {
                    Value::Object(out)
                }
            }
            Value::Array(items) => {
                let list_type = self.list_type();
                if items.is_empty() || matches!(list_type, ListType::Atomic) {
                    return Value::Null;
                }
                let mut out = Vec::new();
                for item in items {
                    let Ok(pe) = self.item_pe(&list_type, item) else {
                        out.push(item.clone());
                        continue;
                    };
                    if set.members.contains(&pe) {
                        continue;
                    }
                    match set.children.get(&pe) {
                        Some(below) => {
                            self.path.push(pe);
                            let kept = self.remove_items(item, below);
                            self.path.pop();
                            out.push(kept);
                        }
                        None => out.push(item.clone()),
                    }
                }
                if out.is_empty() {
                    Value::Null
                } else {
                    Value::Array(out)
                }
            }
            scalar => scalar.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values as SMD orders, compares and prints them, and JSON as Go writes it.

fn value_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// SMD's total order on values; integers and floats compare by numeric value.
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let int =
                |n: &serde_json::Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
            match (int(x), int(y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => {
                    let p = x.as_f64().unwrap_or(f64::NAN);
                    let q = y.as_f64().unwrap_or(f64::NAN);
                    p.partial_cmp(&q).unwrap_or(Ordering::Equal)
                }
            }
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| cmp_values(p, q))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .zip(y)
            .map(|((kp, vp), (kq, vq))| kp.cmp(kq).then_with(|| cmp_values(vp, vq)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => value_rank(a).cmp(&value_rank(b)),
    }
}

fn cmp_key_fields(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|((na, va), (nb, vb))| na.cmp(nb).then_with(|| cmp_values(va, vb)))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

fn values_equal(a: &Value, b: &Value) -> bool {
    cmp_values(a, b) == Ordering::Equal
}

/// SMD's `value.ToString`, used in path elements of messages: strings Go-quoted, floats as `%v`.
fn smd_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => go_float(n.as_f64().unwrap_or_default(), 1e-4, true),
        },
        Value::String(s) => crate::gostr::quote(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(smd_to_string).collect::<Vec<_>>().join(",")
        ),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{k}={}", smd_to_string(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// A float as Go prints it: plain digits in the middle range, an exponent outside it (`1e+21`).
/// `%v` pads exponents to two digits (`1e-05`); encoding/json does not (`1e-7`).
fn go_float(f: f64, small: f64, pad_exponent: bool) -> String {
    let abs = f.abs();
    if abs == 0.0 || (abs >= small && abs < 1e21) {
        return format!("{f}");
    }
    let rust = format!("{f:e}");
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((rust.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or_default();
    let sign = if exponent < 0 { '-' } else { '+' };
    let digits = exponent.unsigned_abs();
    if pad_exponent && digits < 10 {
        format!("{mantissa}e{sign}0{digits}")
    } else {
        format!("{mantissa}e{sign}{digits}")
    }
}

/// A value as Go's JSON encoders write it: compact, keys sorted, integral numbers as integers.
fn go_json_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (_, Some(u)) => out.push_str(&u.to_string()),
            _ => out.push_str(&go_float(n.as_f64().unwrap_or_default(), 1e-6, false)),
        },
        Value::String(s) => crate::gostr::json_string_into(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_into(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                crate::gostr::json_string_into(key, out);
                out.push(':');
                go_json_into(value, out);
            }
            out.push('}');
        }
    }
}

/// Seconds since the epoch of an RFC 3339 time, for ordering entries; `None` if unparseable.
fn unix_seconds(t: &str) -> Option<i64> {
    let num = |range: std::ops::Range<usize>| t.get(range).and_then(|s| s.parse::<i64>().ok());
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = t.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days from the civil date (proleptic Gregorian), counting from 1970-01-01.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2024-05-01T10:00:00Z";
    const T1: &str = "2024-05-01T10:05:00Z";
    const T2: &str = "2024-05-01T10:10:00Z";
    const T3: &str = "2024-05-01T10:15:00Z";

    /// The list types of the built-ins these tests use; anything else is atomic, as in SMD.
    struct Schema {
        status_subresource: bool,
    }

    impl MergeSchema for Schema {
        fn list_type(&self, path: &[&str]) -> ListType {
            let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| (*s).to_owned()).collect());
            match path.join(".").as_str() {
                "metadata.finalizers" => ListType::Set,
                "metadata.ownerReferences" => keys(&["uid"]),
                "spec.template.spec.containers" => keys(&["name"]),
                "spec.template.spec.containers.ports" => keys(&["containerPort", "protocol"]),
                "spec.template.spec.containers.env" => keys(&["name"]),
                "status.conditions" => keys(&["type"]),
                _ => ListType::Atomic,
            }
        }

        fn map_is_atomic(&self, path: &[&str]) -> bool {
            path == ["spec", "selector"]
        }

        fn status_is_subresource(&self) -> bool {
            self.status_subresource
        }
    }

    const S: Schema = Schema {
        status_subresource: true,
    };

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}
                }
            }
        })
    }

    /// A configuration with just identity and `extra` merged in at the top.
    fn config(extra: Value) -> Value {
        let mut out = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}});
        merge_json(&mut out, extra);
        out
    }

    fn merge_json(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge_json(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    /// What the store adds on create, so later writes see an existing object.
    fn stored(mut object: Value) -> Value {
        object["metadata"]["uid"] = json!("6b1f4c9e");
        object["metadata"]["resourceVersion"] = json!("1");
        object["metadata"]["creationTimestamp"] = json!(T0);
        object
    }

    fn create(object: &Value, manager: &str) -> Value {
        stored(update(None, object, manager, &S, T0, "apps/v1", None))
    }

    fn do_apply(
        live: &Value,
        applied: &Value,
        manager: &str,
        force: bool,
        now: &str,
    ) -> Result<Value, Conflicts> {
        apply(Some(live), applied, manager, force, &S, now, "apps/v1", None)
    }

    fn entries(object: &Value) -> Vec<Value> {
        object
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn entry(object: &Value, manager: &str) -> Value {
        entries(object)
            .into_iter()
            .find(|e| e["manager"] == manager)
            .unwrap_or_else(|| panic!("no entry for {manager} in {:#}", object["metadata"]))
    }

    fn owns(object: &Value, manager: &str, path: &str) -> bool {
        let set = FieldSet::from_fields_v1(&entry(object, manager)["fieldsV1"]).unwrap();
        set.paths().iter().any(|p| path_to_string(p) == path)
    }

    fn conflicts(result: Result<Value, Conflicts>) -> Conflicts {
        match result {
            Err(c) if c.code() == 409 => c,
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    #[test]
    fn fields_v1_round_trip() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:finalizers": {"v:\"a\"": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}, "f:replicas": {}}
        });
        let set = FieldSet::from_fields_v1(&encoded).unwrap();
        let paths: Vec<String> = set.paths().iter().map(|p| path_to_string(p)).collect();
        assert_eq!(
            paths,
            [
                ".metadata.labels",
                ".metadata.finalizers[=\"a\"]",
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.containers[name=\"web\"]",
                ".spec.containers[name=\"web\"].image",
            ]
        );
        assert!(set.contains(&[
            PathElement::Field("spec".into()),
            PathElement::Field("replicas".into())
        ]));
        assert_eq!(set.to_fields_v1(), encoded);

        // Unknown element kinds are dropped, malformed keys refused.
        let odd = FieldSet::from_fields_v1(&json!({"f:a": {}, "z:b": {}, "i:0": {}})).unwrap();
        assert_eq!(odd.to_fields_v1(), json!({"f:a": {}, "i:0": {}}));
        assert!(FieldSet::from_fields_v1(&json!({"x": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"fa": {}})).is_err());

        // Keys are written as Go writes them: sorted, integral numbers bare, HTML escaped.
        let mut multi = FieldSet::new();
        multi.insert(&[PathElement::Key(vec![
            ("containerPort".into(), json!(80.0)),
            ("protocol".into(), json!("T&P")),
        ])]);
        assert_eq!(
            multi.to_fields_v1(),
            json!({"k:{\"containerPort\":80,\"protocol\":\"T\\u0026P\"}": {}})
        );
    }

    #[test]
    fn create_then_apply() {
        let live = create(&deployment(1, "nginx:1"), "kubectl-create");
        let created = entry(&live, "kubectl-create");
        assert_eq!(created["operation"], "Update");
        assert_eq!(created["apiVersion"], "apps/v1");
        assert_eq!(created["time"], T0);
        assert_eq!(
            created["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    ".": {}, "f:replicas": {}, "f:selector": {},
                    "f:template": {
                        ".": {},
                        "f:metadata": {".": {}, "f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {".": {}, "f:containers": {".": {}, "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            })
        );

        // Applying the same values plus a label: no conflict, shared ownership, fresh time.
        let mut applied = deployment(1, "nginx:1");
        applied["metadata"]["labels"]["tier"] = json!("frontend");
        let out = do_apply(&live, &applied, "kubectl", false, T1).unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "tier": "frontend"})
        );
        assert_eq!(out["metadata"]["uid"], live["metadata"]["uid"]);
        let mine = entry(&out, "kubectl");
        assert_eq!(mine["operation"], "Apply");
        assert_eq!(mine["time"], T1);
        assert_eq!(
            mine["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
                "f:spec": {
                    "f:replicas": {}, "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            })
        );
        assert!(owns(&out, "kubectl-create", ".spec.replicas"));
        // Apply entries sort before Update entries.
        let order: Vec<Value> = entries(&out).iter().map(|e| e["manager"].clone()).collect();
        assert_eq!(order, [json!("kubectl"), json!("kubectl-create")]);

        // Re-applying unchanged is a no-op: the object and every time stay as they were.
        let again = do_apply(&out, &applied, "kubectl", false, T2).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn apply_creates_and_new_manager_without_changes_gets_no_time() {
        let created = apply(
            None,
            &deployment(2, "nginx:1"),
            "helm",
            false,
            &S,
            T0,
            "apps/v1",
            None,
        )
        .unwrap();
        assert_eq!(created["spec"]["replicas"], 2);
        assert_eq!(entries(&created).len(), 1);
        assert_eq!(entry(&created, "helm")["time"], T0);
        assert_eq!(
            created["metadata"]
                .get("managedFields")
                .map(|m| m.as_array().map(Vec::len)),
            Some(Some(1))
        );

        // kube-apiserver (kubernetes/kubernetes#127938): a second applier changing nothing is
        // recorded without a time.
        let live = stored(created);
        let out = do_apply(&live, &deployment(2, "nginx:1"), "argocd", false, T1).unwrap();
        assert!(entry(&out, "argocd").get("time").is_none());
        assert!(owns(&out, "argocd", ".spec.replicas") && owns(&out, "helm", ".spec.replicas"));
    }

    #[test]
    fn two_managers_conflict() {
        let live = create(&deployment(1, "nginx:1"), "kubectl-client-side-apply");
        let err = do_apply(&live, &deployment(3, "nginx:1"), "helm", false, T1).unwrap_err();
        assert_eq!(err.code(), 409);
        assert_eq!(err.reason(), "Conflict");
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            err.causes(),
            [json!({
                "reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
                "field": ".spec.replicas"
            })]
        );
        let c = conflicts(Err(err));
        assert_eq!(c.conflicts[0].manager, "kubectl-client-side-apply");
        assert_eq!(c.conflicts[0].operation, Operation::Update);
    }

    #[test]
    fn force_takes_ownership() {
        let live = create(&deployment(1, "nginx:1"), "kubectl-client-side-apply");
        let out = do_apply(&live, &deployment(3, "nginx:1"), "helm", true, T1).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(owns(&out, "helm", ".spec.replicas"));
        assert!(!owns(&out, "kubectl-client-side-apply", ".spec.replicas"));
        // What was not contested stays shared.
        assert!(owns(
            &out,
            "kubectl-client-side-apply",
            ".spec.template.spec.containers[name=\"web\"].image"
        ));
        // And the next apply by the same manager no longer conflicts.
        assert!(do_apply(&stored(out), &deployment(4, "nginx:1"), "helm", false, T2).is_ok());
    }

    #[test]
    fn field_dropped_from_later_apply_is_removed() {
        let first = config(
            json!({"metadata": {"labels": {"app": "web", "tier": "frontend"}, "annotations": {"a": "1"}}, "spec": {"replicas": 2}}),
        );
        let live = stored(apply(None, &first, "helm", false, &S, T0, "apps/v1", None).unwrap());
        let second = config(json!({"metadata": {"labels": {"app": "web"}}}));
        let out = do_apply(&live, &second, "helm", false, T1).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert!(out["metadata"].get("annotations").is_none());
        assert!(out.get("spec").is_none());
        assert_eq!(
            entry(&out, "helm")["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:app": {}}}})
        );
        assert_eq!(out["metadata"]["name"], "web");
        assert_eq!(out["metadata"]["uid"], "6b1f4c9e");
    }

    #[test]
    fn field_shared_by_two_appliers_survives_one_dropping_it() {
        let both = config(json!({"metadata": {"labels": {"shared": "x", "a-only": "1"}}}));
        let live = stored(apply(None, &both, "a", false, &S, T0, "apps/v1", None).unwrap());
        let live = stored(
            do_apply(
                &live,
                &config(json!({"metadata": {"labels": {"shared": "x"}}})),
                "b",
                false,
                T1,
            )
            .unwrap(),
        );
        assert!(owns(&live, "a", ".metadata.labels.shared") && owns(&live, "b", ".metadata.labels.shared"));

        let out = do_apply(
            &live,
            &config(json!({"metadata": {"labels": {"a-only": "1"}}})),
            "a",
            false,
            T2,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"shared": "x", "a-only": "1"}));
        assert!(!owns(&out, "a", ".metadata.labels.shared"));
        assert!(owns(&out, "b", ".metadata.labels.shared"));

        // Once b drops it too, nobody keeps it.
        let out = do_apply(
            &stored(out),
            &config(json!({"metadata": {"labels": {"other": "y"}}})),
            "b",
            false,
            T3,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a-only": "1", "other": "y"}));
    }

    #[test]
    fn list_map_items_merge_across_managers() {
        let containers =
            |items: Value| config(json!({"spec": {"template": {"spec": {"containers": items}}}}));
        let live = stored(
            apply(
                None,
                &containers(json!([{"name": "web", "image": "nginx:1"}])),
                "a",
                false,
                &S,
                T0,
                "apps/v1",
                None,
            )
            .unwrap(),
        );
        let live = stored(
            do_apply(
                &live,
                &containers(json!([{"name": "sidecar", "image": "envoy:1"}])),
                "b",
                false,
                T1,
            )
            .unwrap(),
        );
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy:1"}])
        );
        assert!(owns(&live, "a", ".spec.template.spec.containers[name=\"web\"]"));
        assert!(!owns(
            &live,
            "a",
            ".spec.template.spec.containers[name=\"sidecar\"]"
        ));
        assert_eq!(
            entry(&live, "b")["fieldsV1"],
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );

        // b adds a field to a's container: no conflict, the item stays a's and gains b's field.
        let live = stored(
            do_apply(
                &live,
                &containers(
                    json!([{"name": "sidecar", "image": "envoy:1"}, {"name": "web", "args": ["-v"]}]),
                ),
                "b",
                false,
                T2,
            )
            .unwrap(),
        );
        // Shared items take the order of the latest configuration, as SMD orders them.
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([{"name": "sidecar", "image": "envoy:1"}, {"name": "web", "image": "nginx:1", "args": ["-v"]}])
        );

        // a drops its container: b still owns the item, so only a's image goes.
        let out = do_apply(&live, &config(json!({"spec": {"replicas": 1}})), "a", false, T3).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "sidecar", "image": "envoy:1"}, {"name": "web", "args": ["-v"]}])
        );
    }

    #[test]
    fn set_lists_merge_by_value() {
        let finalizers = |items: Value| config(json!({"metadata": {"finalizers": items}}));
        let live = stored(
            apply(
                None,
                &finalizers(json!(["a.example/x"])),
                "a",
                false,
                &S,
                T0,
                "apps/v1",
                None,
            )
            .unwrap(),
        );
        let live = stored(do_apply(&live, &finalizers(json!(["b.example/y"])), "b", false, T1).unwrap());
        assert_eq!(
            live["metadata"]["finalizers"],
            json!(["a.example/x", "b.example/y"])
        );
        assert_eq!(
            entry(&live, "b")["fieldsV1"],
            json!({"f:metadata": {"f:finalizers": {"v:\"b.example/y\"": {}}}})
        );

        let out = do_apply(
            &live,
            &config(json!({"metadata": {"labels": {"k": "v"}}})),
            "a",
            false,
            T2,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b.example/y"]));

        // A controller removing its finalizer with a plain write takes it from its owner.
        let live = stored(out);
        let mut patched = live.clone();
        patched["metadata"]["finalizers"] = json!([]);
        let out = update(Some(&live), &patched, "controller", &S, T3, "apps/v1", None);
        assert!(entries(&out).iter().all(|e| e["manager"] != "b"));
    }

    #[test]
    fn atomic_lists_are_replaced_whole() {
        let args = |a: Value| {
            config(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "args": a}]}}}}))
        };
        let live = stored(
            apply(
                None,
                &args(json!(["x", "y"])),
                "a",
                false,
                &S,
                T0,
                "apps/v1",
                None,
            )
            .unwrap(),
        );
        assert_eq!(
            entry(&live, "a")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"],
            json!({".": {}, "f:args": {}, "f:name": {}})
        );
        let err = do_apply(&live, &args(json!(["z"])), "b", false, T1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.template.spec.containers[name=\"web\"].args"
        );
        let out = do_apply(&live, &args(json!(["z"])), "b", true, T1).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["z"])
        );
        assert!(owns(
            &out,
            "b",
            ".spec.template.spec.containers[name=\"web\"].args"
        ));
        assert!(!owns(
            &out,
            "a",
            ".spec.template.spec.containers[name=\"web\"].args"
        ));

        // Equal values are no conflict, even for a list someone else owns.
        assert!(do_apply(&live, &args(json!(["x", "y"])), "c", false, T1).is_ok());
    }

    #[test]
    fn update_steals_ownership_from_an_applier() {
        let live = stored(
            apply(
                None,
                &deployment(3, "nginx:1"),
                "helm",
                false,
                &S,
                T0,
                "apps/v1",
                None,
            )
            .unwrap(),
        );
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        let out = stored(update(
            Some(&live),
            &scaled,
            "kube-controller-manager",
            &S,
            T1,
            "apps/v1",
            None,
        ));
        assert!(!owns(&out, "helm", ".spec.replicas"));
        let kcm = entry(&out, "kube-controller-manager");
        assert_eq!(kcm["operation"], "Update");
        assert_eq!(kcm["time"], T1);
        assert_eq!(kcm["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));

        let err = do_apply(&out, &deployment(3, "nginx:1"), "helm", false, T2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" using apps/v1: .spec.replicas"
        );
        // Applying without replicas leaves the controller's value alone.
        let mut without = deployment(3, "nginx:1");
        without["spec"].as_object_mut().unwrap().remove("replicas");
        let kept = do_apply(&out, &without, "helm", false, T2).unwrap();
        assert_eq!(kept["spec"]["replicas"], 5);
    }

    #[test]
    fn updates_merge_per_manager_and_empty_managers_are_dropped() {
        let cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}});
        let live = stored(update(None, &cm, "creator", &S, T0, "v1", None));
        assert_eq!(
            entry(&live, "creator")["fieldsV1"],
            json!({"f:data": {".": {}, "f:k": {}}})
        );

        let mut edited = live.clone();
        edited["data"]["j"] = json!("2");
        let live2 = stored(update(Some(&live), &edited, "editor", &S, T1, "v1", None));
        let mut edited = live2.clone();
        edited["metadata"]["labels"] = json!({"l": "x"});
        let live3 = stored(update(Some(&live2), &edited, "editor", &S, T2, "v1", None));
        let editor: Vec<Value> = entries(&live3)
            .into_iter()
            .filter(|e| e["manager"] == "editor")
            .collect();
        assert_eq!(editor.len(), 1);
        assert_eq!(editor[0]["time"], T2);
        assert_eq!(
            editor[0]["fieldsV1"],
            json!({"f:data": {"f:j": {}}, "f:metadata": {"f:labels": {".": {}, "f:l": {}}}})
        );

        // Another API version is another entry for an updater.
        let mut edited = live3.clone();
        edited["data"]["j"] = json!("3");
        let live4 = update(Some(&live3), &edited, "editor", &S, T3, "v2", None);
        assert_eq!(
            entries(&live4)
                .iter()
                .filter(|e| e["manager"] == "editor")
                .count(),
            2
        );

        // A write that changes nothing records nothing.
        let same = update(Some(&live3), &live3, "idle", &S, T3, "v1", None);
        assert_eq!(entries(&same), entries(&live3));

        // Removing everything the creator owned drops its entry.
        let mut gutted = live3.clone();
        gutted.as_object_mut().unwrap().remove("data");
        let out = update(Some(&live3), &gutted, "editor", &S, T3, "v1", None);
        assert!(entries(&out).iter().all(|e| e["manager"] != "creator"));
        assert_eq!(
            entry(&out, "editor")["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:l": {}}}})
        );
    }

    #[test]
    fn managed_fields_in_update_requests() {
        let live = create(&deployment(1, "nginx:1"), "kubectl-create");
        // Round-tripped managedFields are kept; a reset empties them and they stay empty.
        let mut reset = live.clone();
        reset["metadata"]["managedFields"] = json!([]);
        reset["spec"]["replicas"] = json!(2);
        let out = stored(update(
            Some(&live),
            &reset,
            "kubectl-edit",
            &S,
            T1,
            "apps/v1",
            None,
        ));
        assert!(out["metadata"].get("managedFields").is_none());

        // The first apply to an untracked object records what was there as before-first-apply.
        let err = do_apply(&out, &deployment(5, "nginx:1"), "helm", false, T2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn status_subresource_apply_leaves_spec_alone() {
        let live = stored(
            apply(
                None,
                &deployment(3, "nginx:1"),
                "helm",
                false,
                &S,
                T0,
                "apps/v1",
                None,
            )
            .unwrap(),
        );
        let status = config(
            json!({"spec": {"replicas": 9}, "status": {"readyReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]}}),
        );
        let out = apply(
            Some(&live),
            &status,
            "kube-controller-manager",
            false,
            &S,
            T1,
            "apps/v1",
            Some("status"),
        )
        .unwrap();
        assert_eq!(out["spec"], live["spec"]);
        assert_eq!(out["status"]["readyReplicas"], 2);
        let e = entry(&out, "kube-controller-manager");
        assert_eq!(e["subresource"], "status");
        assert_eq!(e["operation"], "Apply");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:readyReplicas": {}}})
        );
        assert!(owns(&out, "helm", ".spec.replicas"));

        // The main resource ignores status in an apply and keeps the live one.
        let live = stored(out);
        let mut with_status = deployment(3, "nginx:1");
        with_status["status"] = json!({"readyReplicas": 7});
        let main = do_apply(&live, &with_status, "helm", false, T2).unwrap();
        assert_eq!(main["status"]["readyReplicas"], 2);
        assert!(!owns(&main, "helm", ".status.readyReplicas"));

        // Without a status subresource, status is an ordinary field.
        let plain = Schema {
            status_subresource: false,
        };
        let owned = apply(
            Some(&live),
            &with_status,
            "helm",
            true,
            &plain,
            T2,
            "apps/v1",
            None,
        )
        .unwrap();
        assert_eq!(owned["status"]["readyReplicas"], 7);
        assert!(owns(&owned, "helm", ".status.readyReplicas"));
    }

    #[test]
    fn status_update_is_tracked_per_subresource() {
        let live = create(&deployment(1, "nginx:1"), "kubectl-create");
        let mut with_status = live.clone();
        with_status["status"] = json!({"replicas": 1});
        let out = update(
            Some(&live),
            &with_status,
            "kube-controller-manager",
            &S,
            T1,
            "apps/v1",
            Some("status"),
        );
        let e = entry(&out, "kube-controller-manager");
        assert_eq!(e["subresource"], "status");
        assert_eq!(e["fieldsV1"], json!({"f:status": {".": {}, "f:replicas": {}}}));
        let message = conflicts(apply(
            Some(&stored(out)),
            &config(json!({"status": {"replicas": 4}})),
            "other",
            false,
            &S,
            T2,
            "apps/v1",
            Some("status"),
        ))
        .message();
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" with subresource \"status\" using apps/v1: .status.replicas"
        );
    }

    #[test]
    fn conflict_messages() {
        let live = create(&deployment(1, "nginx:1"), "m1");
        let image = config(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}),
        );
        let live = stored(do_apply(&live, &image, "m2", true, T1).unwrap());
        let err = do_apply(&live, &deployment(5, "nginx:3"), "helm", false, T2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"m1\" using apps/v1:\n- .spec.replicas\nconflicts with \"m2\":\n- .spec.template.spec.containers[name=\"web\"].image"
        );
        assert_eq!(err.causes().len(), 2);

        // Several fields of one manager are listed under it in SMD's order.
        let live = create(&deployment(1, "nginx:1"), "m1");
        let c = conflicts(do_apply(&live, &deployment(2, "nginx:2"), "helm", false, T1));
        assert_eq!(
            c.message(),
            "Apply failed with 2 conflicts: conflicts with \"m1\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn kubectl_upgrades_from_client_side_apply() {
        let mut object = deployment(1, "nginx:1");
        let mut last = deployment(1, "nginx:1");
        last["metadata"]["annotations"] = json!({});
        object["metadata"]["annotations"] =
            json!({LAST_APPLIED_ANNOTATION: serde_json::to_string(&last).unwrap()});
        let live = create(&object, "kubectl-client-side-apply");

        // Fields whose live values kubectl itself last applied are taken without --force-conflicts.
        let out = do_apply(&live, &deployment(2, "nginx:1"), "kubectl", false, T1).unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        assert!(owns(&out, "kubectl", ".spec.replicas"));
        let refreshed = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .unwrap();
        assert!(refreshed.ends_with('\n'));
        assert_eq!(
            serde_json::from_str::<Value>(refreshed).unwrap(),
            deployment(2, "nginx:1")
        );

        // A value someone changed since is still a conflict, and other managers get no pass.
        let mut drifted = live.clone();
        drifted["spec"]["replicas"] = json!(4);
        let drifted = stored(update(Some(&live), &drifted, "hpa", &S, T1, "apps/v1", None));
        assert!(do_apply(&drifted, &deployment(2, "nginx:1"), "kubectl", false, T2).is_err());
        assert!(do_apply(&live, &deployment(2, "nginx:1"), "helm", false, T2).is_err());
    }

    #[test]
    fn update_entries_are_capped() {
        let mut live = create(&config(json!({"metadata": {"labels": {"l0": "v"}}})), "u0");
        for i in 1..=10 {
            let mut next = live.clone();
            next["metadata"]["labels"][format!("l{i}")] = json!("v");
            let now = format!("2024-05-01T11:{i:02}:00Z");
            live = stored(update(
                Some(&live),
                &next,
                &format!("u{i}"),
                &S,
                &now,
                "apps/v1",
                None,
            ));
        }
        let all = entries(&live);
        assert_eq!(all.len(), 10);
        let ancient = entry(&live, "ancient-changes");
        assert_eq!(ancient["time"], "2024-05-01T11:01:00Z");
        assert_eq!(
            ancient["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:l0": {}, "f:l1": {}}}})
        );
        assert!(all.iter().all(|e| e["manager"] != "u0" && e["manager"] != "u1"));
    }

    #[test]
    fn list_key_defaults_match_defaulted_items() {
        let with_ports = |ports: Value| {
            config(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "ports": ports}]}}}}))
        };
        let live = create(
            &with_ports(json!([{"containerPort": 80, "protocol": "TCP"}])),
            "creator",
        );
        let out = do_apply(
            &live,
            &with_ports(json!([{"containerPort": 80}])),
            "helm",
            false,
            T1,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        assert!(owns(
            &out,
            "helm",
            ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80,protocol=\"TCP\"].containerPort"
        ));
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let live = create(&deployment(1, "nginx:1"), "creator");
        let dup =
            config(json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}));
        let err = do_apply(&live, &dup, "helm", false, T1).unwrap_err();
        assert_eq!(err.code(), 500);
        assert!(
            err.to_string()
                .ends_with(".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"),
            "{err}"
        );

        let keyless = config(json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}));
        let err = do_apply(&live, &keyless, "helm", false, T1).unwrap_err();
        assert!(err.to_string().contains(
            ".spec.template.spec.containers: element 0: associative list with keys has an element that omits all key fields [\"name\"]"
        ));

        let mut with_managed = deployment(1, "nginx:1");
        with_managed["metadata"]["managedFields"] = live["metadata"]["managedFields"].clone();
        let err = do_apply(&live, &with_managed, "helm", false, T1).unwrap_err();
        assert_eq!(err, Conflicts::bad_request("metadata.managedFields must be nil"));

        let mut other_version = deployment(1, "nginx:1");
        other_version["apiVersion"] = json!("apps/v1beta2");
        let err = do_apply(&live, &other_version, "helm", false, T1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid object type: apps/v1beta2, Kind=Deployment"
        );
    }

    #[test]
    fn update_that_cannot_be_tracked_keeps_previous_entries() {
        let live = create(&deployment(1, "nginx:1"), "creator");
        let mut broken = live.clone();
        broken["spec"]["template"]["spec"]["containers"] = json!([{"image": "keyless"}]);
        let out = update(Some(&live), &broken, "editor", &S, T1, "apps/v1", None);
        assert_eq!(out["spec"], broken["spec"]);
        assert_eq!(
            out["metadata"]["managedFields"],
            live["metadata"]["managedFields"]
        );
    }

    #[test]
    fn system_metadata_in_a_configuration_is_ignored() {
        let live = create(&deployment(1, "nginx:1"), "creator");
        let mut applied = deployment(1, "nginx:1");
        applied["metadata"]["resourceVersion"] = json!("99");
        applied["metadata"]["creationTimestamp"] = Value::Null;
        applied["metadata"]["uid"] = json!("other");
        let out = do_apply(&live, &applied, "helm", false, T1).unwrap();
        assert_eq!(out["metadata"]["resourceVersion"], "1");
        assert_eq!(out["metadata"]["uid"], "6b1f4c9e");
        assert_eq!(out["metadata"]["creationTimestamp"], T0);
        assert!(
            entry(&out, "helm")["fieldsV1"]["f:metadata"]
                .get("f:uid")
                .is_none()
        );
    }

    #[test]
    fn list_order_follows_smd() {
        let mut w = Walker::new(&S);
        w.enter_field("metadata");
        w.enter_field("finalizers");
        let merged = w
            .merge(Some(&json!(["a", "b", "c", "d"])), Some(&json!(["d", "x", "b"])))
            .unwrap();
        assert_eq!(merged, json!(["a", "c", "d", "x", "b"]));
        let merged = w.merge(Some(&json!(["a", "b"])), Some(&json!(["c"]))).unwrap();
        assert_eq!(merged, json!(["a", "b", "c"]));
    }

    #[test]
    fn user_agent_prefix_names_the_manager() {
        assert_eq!(
            manager_from_user_agent("kubectl-edit/v1.31.0 (linux/amd64) kubernetes/abc"),
            "kubectl-edit"
        );
        assert_eq!(manager_from_user_agent("Go-http-client/1.1"), "Go-http-client");
        assert_eq!(manager_from_user_agent("bad\u{7}name"), "badname");
        assert_eq!(manager_from_user_agent(&"x".repeat(200)).len(), 128);
    }

    #[test]
    fn times_order_entries() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2024-05-01T10:00:00Z"), Some(1_714_557_600));
        assert_eq!(unix_seconds("2024-05-01T12:00:00.5+02:00"), Some(1_714_557_600));
        assert_eq!(unix_seconds("garbage"), None);
    }
}
