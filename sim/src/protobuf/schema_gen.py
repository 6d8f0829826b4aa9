#!/usr/bin/env python3
"""Regenerates schema_data.rs, the wire-to-JSON schema of the protobuf decoder.

The protobuf encoding alone cannot reproduce the JSON a Go client would have sent: JSON
names, `omitempty`/`omitzero`, pointer-ness (does an explicit zero survive?) and inlined
embedded structs live only in the Go struct tags. So this joins two upstream sources, keyed by
(message name, field number):

  * `generated.proto` of each API package: message names, field numbers, wire types;
  * the package's Go types (`*.go` next to it): JSON name, omitempty/omitzero, pointer, inline.

Usage (each argument is a checkout of the named Kubernetes staging repository):

    python3 schema_gen.py --api DIR --apimachinery DIR --apiextensions DIR > schema_data.rs
    cargo fmt -p kubefoundry-sim

Only messages reachable from the ROOTS below are emitted, which keeps the table small.
"""

import argparse
import os
import re
import sys

# (group, version, kind, proto package, message). An empty group is the core group.
ROOTS = [
    ("", "v1", kind, "k8s.io.api.core.v1", kind)
    for kind in [
        "Binding",
        "ConfigMap",
        "Endpoints",
        "Event",
        "LimitRange",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Pod",
        "PodTemplate",
        "ReplicationController",
        "ResourceQuota",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
] + [
    ("apps", "v1", kind, "k8s.io.api.apps.v1", kind)
    for kind in ["ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"]
] + [
    ("batch", "v1", kind, "k8s.io.api.batch.v1", kind) for kind in ["CronJob", "Job"]
] + [
    ("networking.k8s.io", "v1", kind, "k8s.io.api.networking.v1", kind)
    for kind in ["Ingress", "IngressClass", "NetworkPolicy"]
] + [
    ("rbac.authorization.k8s.io", "v1", kind, "k8s.io.api.rbac.v1", kind)
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
] + [
    ("coordination.k8s.io", "v1", "Lease", "k8s.io.api.coordination.v1", "Lease"),
    ("policy", "v1", "Eviction", "k8s.io.api.policy.v1", "Eviction"),
    ("policy", "v1", "PodDisruptionBudget", "k8s.io.api.policy.v1", "PodDisruptionBudget"),
] + [
    ("authorization.k8s.io", "v1", kind, "k8s.io.api.authorization.v1", kind)
    for kind in [
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    ]
] + [
    ("authentication.k8s.io", "v1", kind, "k8s.io.api.authentication.v1", kind)
    for kind in ["SelfSubjectReview", "TokenRequest", "TokenReview"]
] + [
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
     "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1", "CustomResourceDefinition"),
    ("events.k8s.io", "v1", "Event", "k8s.io.api.events.v1", "Event"),
    ("scheduling.k8s.io", "v1", "PriorityClass", "k8s.io.api.scheduling.v1", "PriorityClass"),
    ("certificates.k8s.io", "v1", "CertificateSigningRequest", "k8s.io.api.certificates.v1",
     "CertificateSigningRequest"),
    ("autoscaling", "v1", "Scale", "k8s.io.api.autoscaling.v1", "Scale"),
    ("autoscaling", "v1", "HorizontalPodAutoscaler", "k8s.io.api.autoscaling.v1",
     "HorizontalPodAutoscaler"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "k8s.io.api.autoscaling.v2",
     "HorizontalPodAutoscaler"),
    ("discovery.k8s.io", "v1", "EndpointSlice", "k8s.io.api.discovery.v1", "EndpointSlice"),
    ("storage.k8s.io", "v1", "StorageClass", "k8s.io.api.storage.v1", "StorageClass"),
    # meta.k8s.io/v1 options are registered in every group version; the decoder accepts any.
    ("meta.k8s.io", "v1", "DeleteOptions", "k8s.io.apimachinery.pkg.apis.meta.v1",
     "DeleteOptions"),
]

# Messages whose Go type has a hand-written JSON form; the decoder implements each form.
FORMS = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawJson",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON": "RawJson",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool": "SchemaOrBool",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray":
        "SchemaOrArray",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray":
        "SchemaOrStringArray",
}

SCALARS = {
    "string": "Str",
    "bytes": "Bytes",
    "bool": "Bool",
    "int32": "Int32",
    "int64": "Int64",
    "double": "Double",
}

PROTO_FIELD = re.compile(
    r"^\s*(?:(optional|repeated)\s+([\w.]+)|map<\s*(\w+)\s*,\s*([\w.]+)\s*>)\s+(\w+)\s*=\s*(\d+)"
)


def parse_proto(path):
    """Returns (package, {message: [(number, proto_name, label, type, map_key)]})."""
    package = None
    messages = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("//", 1)[0]
            m = re.match(r"^package\s+([\w.]+);", line)
            if m:
                package = m.group(1)
                continue
            m = re.match(r"^message\s+(\w+)\s*\{", line)
            if m:
                current = m.group(1)
                messages[current] = []
                continue
            if re.match(r"^\}", line):
                current = None
                continue
            if current is None:
                continue
            m = PROTO_FIELD.match(line)
            if not m:
                if line.strip():
                    sys.exit(f"{path}: cannot parse {line!r}")
                continue
            label, ty, key, value, name, number = m.groups()
            if key is not None:
                messages[current].append((int(number), name, "map", value, key))
            else:
                messages[current].append((int(number), name, label, ty, None))
    return package, messages


GO_TYPE = re.compile(r"^type\s+(\w+)\s+struct\s*\{\s*(\})?\s*$")
GO_TAG = re.compile(r'(\w+):"([^"]*)"')


def parse_go_structs(directory):
    """Returns {struct: {number: (json_name, options, go_type, embedded)}}."""
    structs = {}
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(".go") or entry.endswith("_test.go"):
            continue
        current = None
        with open(os.path.join(directory, entry), encoding="utf-8") as f:
            for line in f:
                stripped = line.strip()
                if current is None:
                    m = GO_TYPE.match(line)
                    if m:
                        structs.setdefault(m.group(1), {})
                        if m.group(2) is None:
                            current = m.group(1)
                    continue
                if line.startswith("}"):
                    current = None
                    continue
                if stripped.startswith("//") or "`" not in stripped:
                    continue
                decl, tag = stripped.split("`", 1)
                tags = dict(GO_TAG.findall(tag))
                proto = tags.get("protobuf")
                if proto is None or proto == "-":
                    continue
                number = int(proto.split(",")[1])
                parts = decl.split()
                embedded = len(parts) == 1
                go_type = parts[-1]
                json_tag = tags.get("json")
                if json_tag is None:
                    # An untagged field keeps its Go name; an untagged embedded struct inlines.
                    json_name = "" if embedded else parts[0]
                    options = []
                else:
                    pieces = json_tag.split(",")
                    json_name, options = pieces[0], pieces[1:]
                structs[current][number] = (json_name, options, go_type, embedded)
    return structs


def package_dirs(args):
    """Maps each proto package to its source directory."""
    dirs = {}
    roots = [
        (args.api, "k8s.io/api"),
        (args.apimachinery, "k8s.io/apimachinery"),
        (args.apiextensions, "k8s.io/apiextensions-apiserver"),
    ]
    for root, _ in roots:
        for dirpath, _, files in os.walk(root):
            if "generated.proto" in files:
                package, _ = parse_proto(os.path.join(dirpath, "generated.proto"))
                dirs[package] = dirpath
    return dirs


def const_name(full):
    package, _, name = full.rpartition(".")
    parts = package.split(".")
    if package.startswith("k8s.io.api."):
        prefix = "_".join(parts[3:])
    elif package.startswith("k8s.io.apiextensions_apiserver."):
        prefix = "apiextensions_" + parts[-1]
    elif package == "k8s.io.apimachinery.pkg.apis.meta.v1":
        prefix = "meta_v1"
    else:
        prefix = parts[-1]
    snake = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", snake)
    return (prefix + "_" + snake).upper()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--apimachinery", required=True)
    parser.add_argument("--apiextensions", required=True)
    args = parser.parse_args()

    dirs = package_dirs(args)
    protos = {}
    gos = {}

    def load(package):
        if package not in protos:
            if package not in dirs:
                sys.exit(f"no generated.proto for package {package}")
            protos[package] = parse_proto(os.path.join(dirs[package], "generated.proto"))[1]
            gos[package] = parse_go_structs(dirs[package])

    def resolve(package, ty):
        if ty.startswith("."):
            return ty[1:]
        if "." in ty:
            return ty
        return package + "." + ty

    forms = dict(FORMS)
    emitted = {}
    order = []
    pending = [pkg + "." + msg for (_, _, _, pkg, msg) in ROOTS]
    while pending:
        full = pending.pop()
        if full in emitted:
            continue
        package, _, name = full.rpartition(".")
        load(package)
        if name not in protos[package]:
            sys.exit(f"unknown message {full}")
        go_fields = gos[package].get(name)
        proto_fields = protos[package][name]
        if go_fields is None and full not in FORMS:
            # Go `type X []string` travels as a message wrapping `repeated string items`.
            if [(n, t, l) for n, _, l, t, _ in proto_fields] == [(1, "string", "repeated")]:
                forms[full] = "StringList"
            else:
                sys.exit(f"{full} has no Go struct and no known JSON form")
        fields = []
        for number, proto_name, label, ty, key in proto_fields:
            if key is not None and key != "string":
                sys.exit(f"{full}.{proto_name}: map key {key} unsupported")
            if ty in SCALARS:
                value = SCALARS[ty]
            else:
                target = resolve(package, ty)
                pending.append(target)
                value = ("Msg", target)
            go = go_fields.get(number) if go_fields is not None else None
            if go is None:
                if full not in forms:
                    sys.exit(f"{full}.{proto_name} has no Go field")
                json_name, options, go_type, embedded = proto_name, ["omitempty"], "", False
            else:
                json_name, options, go_type, embedded = go
            if json_name == "-" and full not in forms:
                continue
            flags = []
            if label == "repeated":
                flags.append("REPEATED")
            if label == "map":
                flags.append("MAP")
            if go_type.startswith("*"):
                flags.append("POINTER")
            if "omitempty" in options:
                flags.append("OMIT_EMPTY")
            if "omitzero" in options:
                flags.append("OMIT_ZERO")
            if embedded and json_name == "":
                if value == "Str" or not isinstance(value, tuple):
                    sys.exit(f"{full}.{proto_name}: inline scalar unsupported")
                flags.append("INLINE")
            fields.append((number, json_name, value, flags))
        emitted[full] = fields
        order.append(full)

    names = {}
    for full in emitted:
        const = const_name(full)
        if const in names:
            sys.exit(f"constant clash {const}: {full} and {names[const]}")
        names[const] = full

    out = []
    out.append("//! Wire schema of the Kubernetes API messages the decoder understands.")
    out.append("//!")
    out.append("//! Generated by `schema_gen.py` from the upstream `generated.proto` files and Go struct tags;")
    out.append("//! regenerate rather than edit by hand.")
    out.append("")
    out.append("use super::schema::Form::*;")
    out.append("use super::schema::Value::*;")
    out.append("use super::schema::*;")
    out.append("")
    out.append("/// Every top-level kind the decoder accepts, by group, version and kind.")
    out.append("pub(super) static KINDS: &[Kind] = &[")
    for group, version, kind, pkg, msg in sorted(ROOTS):
        out.append(
            f'    Kind::new("{group}", "{version}", "{kind}", &{const_name(pkg + "." + msg)}),'
        )
    out.append("];")
    for full in sorted(emitted, key=const_name):
        form = forms.get(full, "Struct")
        out.append("")
        out.append(f"static {const_name(full)}: Message = Message {{")
        out.append(f'    name: "{full}",')
        out.append(f"    form: {form},")
        if not emitted[full]:
            out.append("    fields: &[],")
        else:
            out.append("    fields: &[")
            for number, json_name, value, flags in emitted[full]:
                if isinstance(value, tuple):
                    value_src = f"Msg(&{const_name(value[1])})"
                else:
                    value_src = value
                flag_src = " | ".join(flags) if flags else "0"
                line = f'        Field::new({number}, "{json_name}", {value_src}, {flag_src}),'
                if len(line) > 110:
                    out.append("        Field::new(")
                    out.append(f"            {number},")
                    out.append(f'            "{json_name}",')
                    out.append(f"            {value_src},")
                    out.append(f"            {flag_src},")
                    out.append("        ),")
                else:
                    out.append(line)
            out.append("    ],")
        out.append("};")
    print("\n".join(out))


if __name__ == "__main__":
    main()
