"""The CF scenario the least-privilege suite drives through `kubefoundry controller`: an org,
space and role tree with an app (package, build, droplet, process), a route on a TLS domain, a
service instance and binding and a task, then the changes and deletions that make the
controller delete what it made. Every step applies objects as the admin and waits for what the
controller must do; each step exercises some of the chart's RBAC rules, so that removing any
one rule makes some step fail (or the controller log an RBAC denial)."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Callable

from kubernetes import client

import chartenv as ce
from chartenv import ROOT_NAMESPACE as ROOT

CF = "kubefoundry.dev/v1alpha1"
ORG, SPACE = "o1", "s1"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def cf(kind: str, namespace: str, name: str, spec: dict) -> dict:
    return {"apiVersion": CF, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def secret(namespace: str, name: str, data: dict, type_: str = "Opaque") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": type_, "data": {k: b64(v) for k, v in data.items()}}


def role(namespace: str, name: str, type_: str, user: str) -> dict:
    return cf("CFRole", namespace, name, {"type": type_, "subject": {"kind": "User", "name": user}})


Check = Callable[[client.ApiClient], "str | None"]


@dataclass
class Step:
    """Objects to write (and deletions or patches to make), then what must hold afterwards."""

    name: str
    act: Callable[[client.ApiClient], None]
    checks: list[Check] = field(default_factory=list)


# --- checks: each returns None when it holds, else what is missing -------------------------

def exists(api_version: str, kind: str, namespace: str | None, name: str) -> Check:
    return lambda api: None if ce.get(api, api_version, kind, namespace, name) else f"{kind} {namespace}/{name} missing"


def gone(api_version: str, kind: str, namespace: str | None, name: str) -> Check:
    return lambda api: f"{kind} {namespace}/{name} still exists" if ce.get(api, api_version, kind, namespace, name) else None


def ready(kind: str, namespace: str, name: str, status: str = "True", reason: str | None = None) -> Check:
    def check(api):
        obj = ce.get(api, CF, kind, namespace, name)
        if not obj:
            return f"{kind} {namespace}/{name} missing"
        cond = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
        if not cond or cond["status"] != status or (reason and cond.get("reason") != reason):
            return f"{kind} {namespace}/{name} not Ready={status}{f' ({reason})' if reason else ''}: {cond}"
        return None
    return check


def status_field(kind: str, namespace: str, name: str, key: str, want=None) -> Check:
    def check(api):
        obj = ce.get(api, CF, kind, namespace, name) or {}
        value = obj.get("status", {}).get(key)
        if value is None or (want is not None and value != want):
            return f"{kind} {namespace}/{name} status.{key} = {value!r}, want {want if want is not None else 'set'}"
        return None
    return check


def adopted(kind: str, namespace: str, name: str, app: str) -> Check:
    def check(api):
        obj = ce.get(api, CF, kind, namespace, name) or {}
        refs = obj.get("metadata", {}).get("ownerReferences", [])
        return None if any(r["kind"] == "CFApp" and r["name"] == app for r in refs) else f"{kind} {name} not adopted by {app}"
    return check


def bindings_of(owner: str, count: int, cluster: bool = False) -> Check:
    """`count` RoleBindings (or ClusterRoleBindings) that the CFRole `owner` (Kind.ns.name) made."""
    def check(api):
        kind = "ClusterRoleBinding" if cluster else "RoleBinding"
        found = ce.list_(api, "rbac.authorization.k8s.io/v1", kind, selector=f"kubefoundry.dev/owner={owner}")
        return None if len(found) == count else f"{len(found)} {kind}s of {owner}, want {count}"
    return check


def event_for(namespace: str, kind: str, name: str, repeated: bool = False) -> Check:
    """An events.k8s.io Event about the object; `repeated`: one the recorder patched as a series."""
    def check(api):
        events = ce.list_(api, "events.k8s.io/v1", "Event", namespace)
        mine = [e for e in events if e.get("regarding", {}).get("kind") == kind and e["regarding"].get("name") == name]
        if repeated:
            mine = [e for e in mine if (e.get("series") or {}).get("count", 0) >= 2]
        return None if mine else f"no {'repeated ' if repeated else ''}Event for {kind} {namespace}/{name}"
    return check


# --- the scenario -------------------------------------------------------------------------

def _apply_all(objs: list[dict]) -> Callable[[client.ApiClient], None]:
    def act(api):
        for obj in objs:
            ce.apply(api, obj)
    return act


def _steps() -> list[Step]:
    tls = secret(ROOT, "apps-tls", {"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                                    "tls.key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"},
                 "kubernetes.io/tls")
    org_step = Step(
        "org, domain and a global role",
        _apply_all([
            tls,
            cf("CFDomain", ROOT, "d1", {"name": "apps.example.com", "tlsSecretName": "apps-tls"}),
            cf("CFOrg", ROOT, ORG, {"displayName": "My Org"}),
            role(ROOT, "r-admin", "admin", "carol"),
        ]),
        [
            exists("v1", "Namespace", None, ORG),
            ready("CFOrg", ROOT, ORG),
            exists("rbac.authorization.k8s.io/v1", "Role", ROOT, f"kubefoundry-org-{ORG}"),
            ready("CFDomain", ROOT, "d1"),
            ready("CFRole", ROOT, "r-admin"),
            bindings_of(f"CFRole.{ROOT}.r-admin", 1, cluster=True),
            event_for(ROOT, "CFOrg", ORG),
        ],
    )
    space_step = Step(
        "space and an org manager",
        _apply_all([
            cf("CFSpace", ORG, SPACE, {"displayName": "dev"}),
            role(ORG, "r-mgr", "organization_manager", "bob"),
            # A private domain: the controller looks its org up.
            cf("CFDomain", ROOT, "d2", {"name": "internal.example.com", "organizationGuid": ORG}),
        ]),
        [
            exists("v1", "Namespace", None, SPACE),
            ready("CFSpace", ORG, SPACE),
            exists("rbac.authorization.k8s.io/v1", "Role", ORG, f"kubefoundry-space-{SPACE}"),
            # The org namespace, the root namespace (org reader), and the org's space.
            bindings_of(f"CFRole.{ORG}.r-mgr", 3),
            ready("CFRole", ORG, "r-mgr"),
            ready("CFDomain", ROOT, "d2"),
        ],
    )
    app_step = Step(
        "an app with a route and a service binding",
        _apply_all([
            role(SPACE, "r-dev", "space_developer", "alice"),
            secret(SPACE, "db-creds", {"credentials": '{"user": "u", "password": "p"}'}),
            cf("CFApp", SPACE, "a1", {"displayName": "web", "desiredState": "STARTED",
                                      "lifecycle": {"type": "docker"}, "currentDropletGuid": "b1"}),
            cf("CFPackage", SPACE, "p1", {"appGuid": "a1", "type": "docker", "image": "nginx:1.27"}),
            cf("CFBuild", SPACE, "b1", {"appGuid": "a1", "packageGuid": "p1"}),
            # A process made with kubectl rather than by the app: the app adopts it.
            cf("CFProcess", SPACE, "a1-worker", {"appGuid": "a1", "processType": "worker", "instances": 0}),
            cf("CFRoute", SPACE, "rt1", {"host": "myapp", "domainGuid": "d1",
                                         "destinations": [{"guid": "dest-1", "appGuid": "a1", "processType": "web"}]}),
            cf("CFServiceInstance", SPACE, "si1", {"displayName": "db", "type": "user-provided",
                                                   "credentials": {"name": "db-creds"}}),
            cf("CFServiceBinding", SPACE, "sb1", {"type": "app", "serviceInstanceGuid": "si1", "appGuid": "a1"}),
            # Its credentials Secret comes later: Ready=False, then True, then False again.
            cf("CFServiceInstance", SPACE, "si2", {"displayName": "cache", "type": "user-provided",
                                                   "credentials": {"name": "later-creds"}}),
        ]),
        [
            bindings_of(f"CFRole.{SPACE}.r-dev", 3),
            ready("CFRole", SPACE, "r-dev"),
            adopted("CFPackage", SPACE, "p1", "a1"),
            ready("CFPackage", SPACE, "p1"),
            ready("CFBuild", SPACE, "b1"),
            ready("CFDroplet", SPACE, "b1"),
            exists(CF, "CFProcess", SPACE, "a1-web"),
            adopted("CFProcess", SPACE, "a1-worker", "a1"),
            exists("apps/v1", "Deployment", SPACE, "a1-web"),
            exists("v1", "Service", SPACE, "s-a1-web"),
            exists("networking.k8s.io/v1", "Ingress", SPACE, "route-rt1"),
            exists("v1", "Secret", SPACE, "route-rt1-tls"),
            ready("CFRoute", SPACE, "rt1"),
            ready("CFServiceInstance", SPACE, "si1"),
            exists("v1", "Secret", SPACE, "sb1-binding"),
            exists("v1", "Secret", SPACE, "a1-vcap-services"),
            ready("CFServiceBinding", SPACE, "sb1"),
            ready("CFServiceInstance", SPACE, "si2", "False", "CredentialsSecretNotFound"),
            status_field("CFApp", SPACE, "a1", "state", "STARTED"),
        ],
    )
    # Once the droplet is staged (a task waiting for one retries on a back-off timer).
    task_step = Step(
        "a task",
        _apply_all([cf("CFTask", SPACE, "t1", {"appGuid": "a1", "displayName": "migrate", "command": "echo hi"})]),
        [exists("batch/v1", "Job", SPACE, "task-t1"), status_field("CFTask", SPACE, "t1", "sequenceId")],
    )
    flip_step = Step(
        "the late credentials appear",
        _apply_all([secret(SPACE, "later-creds", {"credentials": '{"k": "v"}'})]),
        [ready("CFServiceInstance", SPACE, "si2")],
    )
    unflip_step = Step(
        "and vanish again: the same Warning a second time",
        lambda api: ce.delete(api, "v1", "Secret", SPACE, "later-creds"),
        [
            ready("CFServiceInstance", SPACE, "si2", "False", "CredentialsSecretNotFound"),
            event_for(SPACE, "CFServiceInstance", "si2", repeated=True),
        ],
    )

    def teardown(api):
        # A finished task ignores cancelling; one cancelled from the start has its Job deleted.
        ce.apply(api, cf("CFTask", SPACE, "t2", {"appGuid": "a1", "displayName": "never", "command": "true",
                                                 "canceled": True}))
        ce.merge_patch(api, CF, "CFRoute", SPACE, "rt1", {"spec": {"destinations": []}})
        ce.delete(api, CF, "CFServiceBinding", SPACE, "sb1")
        ce.delete(api, CF, "CFRole", ORG, "r-mgr")
        ce.delete(api, CF, "CFRole", ROOT, "r-admin")

    teardown_step = Step(
        "a cancelled task, unroute, unbind, revoke roles",
        teardown,
        [
            status_field("CFTask", SPACE, "t2", "state", "FAILED"),
            gone("batch/v1", "Job", SPACE, "task-t2"),
            gone("networking.k8s.io/v1", "Ingress", SPACE, "route-rt1"),
            gone("v1", "Service", SPACE, "s-a1-web"),
            gone("v1", "Secret", SPACE, "sb1-binding"),
            gone("v1", "Secret", SPACE, "a1-vcap-services"),
            gone(CF, "CFServiceBinding", SPACE, "sb1"),
            bindings_of(f"CFRole.{ORG}.r-mgr", 0),
            gone(CF, "CFRole", ORG, "r-mgr"),
            bindings_of(f"CFRole.{ROOT}.r-admin", 0, cluster=True),
            gone(CF, "CFRole", ROOT, "r-admin"),
        ],
    )
    space_gone = Step(
        "delete the space",
        lambda api: ce.delete(api, CF, "CFSpace", ORG, SPACE),
        [gone("v1", "Namespace", None, SPACE), gone(CF, "CFSpace", ORG, SPACE)],
    )
    org_gone = Step(
        "delete the org",
        lambda api: ce.delete(api, CF, "CFOrg", ROOT, ORG),
        [gone("v1", "Namespace", None, ORG), gone(CF, "CFOrg", ROOT, ORG)],
    )
    return [org_step, space_step, app_step, task_step, flip_step, unflip_step, teardown_step, space_gone, org_gone]


STEPS = _steps()


@dataclass
class Outcome:
    """How a run ended: every step held (`ok`), or the first evidence that something broke:
    `kind` is "denied" (an RBAC denial in the controller's log), "exited" (the controller
    stopped) or "timeout" (a step did not hold in time)."""

    ok: bool
    evidence: str = ""
    kind: str = ""
    step: str = ""
    seconds: float = 0.0
    timings: list = field(default_factory=list)


def run(api: client.ApiClient, controller: ce.Controller, step_timeout: float, min_seconds: float = 0.0) -> Outcome:
    """Drives the steps while watching the controller; stops at the first RBAC denial in its
    log, its exit, or a step that does not hold within `step_timeout`. A full pass lasts at
    least `min_seconds`, so periodic work (renewing the leader Lease) has happened too."""
    start = time.monotonic()
    timings: list = []

    def broken() -> tuple[str, str] | None:
        denials = controller.denials()
        if denials:
            return "denied", f"RBAC denial in the controller log: {denials[0].strip()[:400]}"
        code = controller.exited()
        if code is not None:
            return "exited", f"controller exited with {code}: {controller.tail(5)}"
        return None

    for step in STEPS:
        began = time.monotonic()
        step.act(api)
        deadline = began + step_timeout
        while True:
            if (why := broken()):
                return Outcome(False, why[1], why[0], step.name, time.monotonic() - start)
            # Checks run in order and stop at the first that does not hold yet.
            missing = next((m for m in (c(api) for c in step.checks) if m), None)
            if not missing:
                timings.append((step.name, round(time.monotonic() - began, 2)))
                break
            if time.monotonic() > deadline:
                return Outcome(False, f"not converged: {missing}", "timeout", step.name,
                               time.monotonic() - start)
            time.sleep(0.2)
    while True:
        if (why := broken()):
            return Outcome(False, why[1], why[0], "(after the last step)", time.monotonic() - start)
        if time.monotonic() - start >= min_seconds:
            break
        time.sleep(0.2)
    return Outcome(True, seconds=time.monotonic() - start, timings=timings)
