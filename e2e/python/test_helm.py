"""Real Helm 4 (the Go SDK inside `helm-python-sdk`) against kubefoundry's simulated cluster.

Helm is client-go through and through: it checks `/version`, walks discovery and OpenAPI v3,
installs `crds/` first, applies templates with server-side apply, stores releases as
protobuf-encoded Secrets and watches readiness with kstatus; each of those breaks here if the
sim answers differently from kube-apiserver."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import helm_python as helm
import pytest
from kubernetes import client

from support import wait_for

CHART = Path(__file__).resolve().parent / "charts" / "demo"
WIDGETS = ("demo.kubefoundry.test", "v1", "widgets")


@pytest.fixture
def helm_cfg(sim, namespace):
    with helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace=namespace) as cfg:
        yield cfg


def release_secrets(core: client.CoreV1Api, namespace: str, release: str) -> list:
    return core.list_namespaced_secret(namespace, label_selector=f"owner=helm,name={release}").items


def decode_release(secret) -> dict:
    """Helm's storage format: the Secret's `release` key holds base64(gzip(JSON))."""
    raw = base64.b64decode(secret.data["release"])
    return json.loads(gzip.decompress(base64.b64decode(raw)))


def not_found(call, *args) -> bool:
    try:
        call(*args)
    except client.ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def test_install_upgrade_rollback_uninstall(api, helm_cfg, namespace):
    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    custom = client.CustomObjectsApi(api)
    name = "demo"

    # --- install: crds/ first, then every template by server-side apply; wait with kstatus.
    release = helm_cfg.install(CHART, name, {"replicas": 2}, wait="watcher", timeout=30)
    assert release["status"] == "deployed" and release["revision"] == 1

    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("widgets.demo.kubefoundry.test")
    established = {c.type: c.status for c in crd.status.conditions}
    assert established.get("Established") == "True"

    cm = core.read_namespaced_config_map(f"{name}-config", namespace)
    assert cm.data == {"greeting": "hello", "color": "blue"}
    assert cm.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    # Helm tags what it owns so a later release cannot adopt it silently.
    assert cm.metadata.annotations["meta.helm.sh/release-name"] == name
    assert cm.metadata.annotations["meta.helm.sh/release-namespace"] == namespace
    assert core.read_namespaced_config_map(f"{name}-extra", namespace).data == {"present": "yes"}

    deploy = apps.read_namespaced_deployment(name, namespace)
    assert deploy.spec.replicas == 2
    assert deploy.spec.template.spec.service_account_name == name
    assert deploy.spec.template.spec.containers[0].image == "registry.example/demo:1.0"
    # wait="watcher" returned, so kstatus saw the rollout finish: the sim's controllers ran.
    assert deploy.status.ready_replicas == 2 and deploy.status.updated_replicas == 2
    assert deploy.status.observed_generation == deploy.metadata.generation

    svc = core.read_namespaced_service(name, namespace)
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip
    assert [(p.port, p.target_port) for p in svc.spec.ports] == [(80, "http")]

    assert core.read_namespaced_service_account(name, namespace).metadata.name == name
    role = rbac.read_namespaced_role(f"{name}-reader", namespace)
    assert role.rules[0].resources == ["configmaps"] and role.rules[0].verbs == ["get", "list", "watch"]
    binding = rbac.read_namespaced_role_binding(f"{name}-reader", namespace)
    assert binding.role_ref.name == f"{name}-reader"
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", name, namespace)]

    widget = custom.get_namespaced_custom_object(*WIDGETS[:2], namespace, WIDGETS[2], f"{name}-widget")
    assert widget["spec"] == {"size": 3, "color": "blue"}

    # Server-side apply recorded Helm as an Apply manager of the fields it set.
    managers = {(m.manager, m.operation) for m in cm.metadata.managed_fields}
    assert any(op == "Apply" for _, op in managers), managers

    # The release lives in a Secret Helm wrote as protobuf and reads back.
    secrets = release_secrets(core, namespace, name)
    assert [s.metadata.name for s in secrets] == [f"sh.helm.release.v1.{name}.v1"]
    assert secrets[0].type == "helm.sh/release.v1"
    assert secrets[0].metadata.labels["status"] == "deployed"
    stored = decode_release(secrets[0])
    assert stored["name"] == name and stored["version"] == 1 and stored["config"] == {"replicas": 2}
    assert [r["name"] for r in helm_cfg.list()] == [name]
    assert helm_cfg.get_values(name) == {"replicas": 2}

    # --- upgrade: changed values land, and the template switched off is deleted.
    release = helm_cfg.upgrade(CHART, name, {"replicas": 3, "greeting": "howdy", "extra": {"enabled": False},
                                             "widget": {"size": 5}}, wait="watcher", timeout=30)
    assert release["status"] == "deployed" and release["revision"] == 2
    assert core.read_namespaced_config_map(f"{name}-config", namespace).data["greeting"] == "howdy"
    assert not_found(core.read_namespaced_config_map, f"{name}-extra", namespace)
    deploy = apps.read_namespaced_deployment(name, namespace)
    assert deploy.spec.replicas == 3 and deploy.status.ready_replicas == 3
    assert custom.get_namespaced_custom_object(*WIDGETS[:2], namespace, WIDGETS[2], f"{name}-widget")["spec"]["size"] == 5
    by_status = {s.metadata.name: s.metadata.labels["status"] for s in release_secrets(core, namespace, name)}
    assert by_status == {f"sh.helm.release.v1.{name}.v1": "superseded", f"sh.helm.release.v1.{name}.v2": "deployed"}
    assert [h["revision"] for h in helm_cfg.history(name)] == [1, 2]

    # --- rollback to revision 1: a third revision with the first one's values.
    helm_cfg.rollback(name, version=1, wait="watcher", timeout=30)
    assert helm_cfg.status(name)["revision"] == 3
    assert core.read_namespaced_config_map(f"{name}-extra", namespace).data == {"present": "yes"}
    assert core.read_namespaced_config_map(f"{name}-config", namespace).data["greeting"] == "hello"
    assert apps.read_namespaced_deployment(name, namespace).spec.replicas == 2

    # --- uninstall: every object and every release Secret goes.
    helm_cfg.uninstall(name, wait="watcher", timeout=30)
    for read, obj in [
        (core.read_namespaced_config_map, f"{name}-config"),
        (core.read_namespaced_config_map, f"{name}-extra"),
        (apps.read_namespaced_deployment, name),
        (core.read_namespaced_service, name),
        (core.read_namespaced_service_account, name),
        (rbac.read_namespaced_role, f"{name}-reader"),
        (rbac.read_namespaced_role_binding, f"{name}-reader"),
    ]:
        assert not_found(read, obj, namespace), f"{obj} survived uninstall"
    assert not_found(custom.get_namespaced_custom_object, *WIDGETS[:2], namespace, WIDGETS[2], f"{name}-widget")
    assert release_secrets(core, namespace, name) == []
    # The Deployment's ReplicaSets and Pods follow it through garbage collection.
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, what="pods garbage-collected")
    assert helm_cfg.list(all_states=True) == []
    # Helm never deletes CRDs it installed from crds/.
    client.ApiextensionsV1Api(api).read_custom_resource_definition("widgets.demo.kubefoundry.test")


def test_legacy_wait_and_default_wait(api, helm_cfg, namespace):
    """The pre-kstatus waiter polls Deployments' ReplicaSets and Pods itself."""
    apps = client.AppsV1Api(api)
    helm_cfg.install(CHART, "legacy", {"replicas": 2, "extra": {"enabled": False}}, wait="legacy", timeout=30)
    deploy = apps.read_namespaced_deployment("legacy", namespace)
    assert deploy.status.ready_replicas == 2 and deploy.status.available_replicas == 2
    # hookOnly, the CLI's default without --wait, returns as soon as everything is applied.
    assert helm_cfg.install(CHART, "nowait", {"extra": {"enabled": False}}, wait="hookOnly")["status"] == "deployed"
    assert sorted(r["name"] for r in helm_cfg.list()) == ["legacy", "nowait"]


def test_server_dry_run_creates_nothing(api, helm_cfg, namespace):
    core = client.CoreV1Api(api)
    release = helm_cfg.install(CHART, "dry", dry_run="server")
    assert "kind: Deployment" in release["manifest"]
    assert not_found(core.read_namespaced_config_map, "dry-config", namespace)
    assert release_secrets(core, namespace, "dry") == []


def test_upgrade_conflicts_with_another_field_manager(api, helm_cfg, namespace):
    """Helm 4 applies without force: a field another manager changed since is a 409 conflict,
    which Helm reports instead of overwriting."""
    apps = client.AppsV1Api(api)
    helm_cfg.install(CHART, "conflict", {"extra": {"enabled": False}})
    # A `kubectl scale`-style write through the scale subresource takes over .spec.replicas.
    apps.patch_namespaced_deployment_scale("conflict", namespace, {"spec": {"replicas": 4}})
    owners = {(m.manager, m.operation, m.subresource): m.fields_v1
              for m in apps.read_namespaced_deployment("conflict", namespace).metadata.managed_fields}
    assert owners[("OpenAPI-Generator", "Update", "scale")] == {"f:spec": {"f:replicas": {}}}
    with pytest.raises(helm.HelmError, match=r"(?i)conflict.*\.spec\.replicas"):
        helm_cfg.upgrade(CHART, "conflict", {"replicas": 2, "extra": {"enabled": False}})
    assert apps.read_namespaced_deployment("conflict", namespace).spec.replicas == 4


def test_helm_test_hook_runs_a_pod_to_completion(api, helm_cfg, namespace):
    helm_cfg.install(CHART, "hooks", {"extra": {"enabled": False}})
    result = helm_cfg.test("hooks", timeout=30, logs=True)
    assert "connection ok" in result.get("logs", ""), result


def test_failed_upgrade_rolls_back(api, helm_cfg, namespace):
    """A rollout that never becomes ready (the sim's image-pull failure) times the kstatus
    wait out; with rollback_on_failure Helm restores the previous revision."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    helm_cfg.install(CHART, "flaky", {"extra": {"enabled": False}}, wait="watcher", timeout=30)
    broken = {"extra": {"enabled": False}, "image": "registry.example/demo:broken",
              "podAnnotations": {"sim.kubefoundry.dev/fail": "image-pull"}}
    with pytest.raises(helm.HelmError, match=r"has been rolled back.*Deployment/\S+/flaky not ready"):
        helm_cfg.upgrade(CHART, "flaky", broken, wait="watcher", timeout=3, rollback_on_failure=True)
    history = {h["revision"]: h["status"] for h in helm_cfg.history("flaky")}
    assert history == {1: "superseded", 2: "failed", 3: "deployed"}
    deploy = apps.read_namespaced_deployment("flaky", namespace)
    assert deploy.spec.template.spec.containers[0].image == "registry.example/demo:1.0"
    wait_for(lambda: apps.read_namespaced_deployment("flaky", namespace).status.ready_replicas == 1,
             what="the rolled-back Deployment ready again")
    images = {p.spec.containers[0].image for p in core.list_namespaced_pod(namespace).items
              if p.metadata.deletion_timestamp is None and p.status.phase == "Running"}
    assert images == {"registry.example/demo:1.0"}


def test_create_namespace(api, sim, namespace):
    core = client.CoreV1Api(api)
    target = f"{namespace}-new"
    try:
        with helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace=target) as cfg:
            cfg.install(CHART, "fresh", {"extra": {"enabled": False}}, create_namespace=True)
        assert core.read_namespace(target).status.phase == "Active"
        assert core.read_namespaced_config_map("fresh-config", target).data["greeting"] == "hello"
    finally:
        try:
            core.delete_namespace(target)
        except client.ApiException:
            pass
