"""charts/kubefoundry and deploy/ through real Helm 4 (helm-python-sdk): lint, rendering with
default and non-default values, schema and template checks that reject bad values with a clear
message, the generated files kept in sync, and a Helm install, upgrade and uninstall into
`kubefoundry sim` (what stays behind is CF data). `kubectl apply -k deploy/` installs the same."""

from __future__ import annotations

import shutil
import subprocess

import helm_python as helm
import pytest
import yaml
from kubernetes import client

import chartenv as ce
import deploy_render
from deploy_render import CHART, NAMESPACE, RELEASE
from support import start_sim, stop_sim, wait_for

CONTROLLER = f"{RELEASE}-controller"
API = f"{RELEASE}-api"


def by_kind(rendered: dict[str, list[dict]]) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for docs in rendered.values() for o in docs}


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_of(deployment: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment).get("env", [])}


def printed_cluster_roles() -> list[dict]:
    return [d for d in yaml.safe_load_all(deploy_render.cf_cluster_roles()) if d]


# --- lint and render ------------------------------------------------------------------------

API_OIDC = {
    "api": {"auth": {"mode": "oidc", "oidc": {"issuerURL": "https://uaa.example.com/oauth/token",
                                              "groupsClaim": "scope"}},
            "ingress": {"enabled": True, "host": "api.example.com", "tls": {"secretName": "api-tls"}}},
    "ingressClassName": "nginx",
    "userPrefix": "oidc:",
    "defaultAppDomain": {"name": "apps.example.com", "tlsSecretName": "apps-tls"},
    "image": {"digest": "sha256:" + "a" * 64},
}
SMALL_ISSUER = {
    "controller": {"replicas": 1, "logLevel": "debug", "extraRules": [
        {"apiGroups": ["kubefoundry.dev"], "resources": ["cfapps/finalizers"], "verbs": ["update"]}]},
    "rootNamespace": {"name": "cf-root", "create": False},
    "api": {"url": "http://localhost:8080",
            "auth": {"mode": "issuer", "issuer": {"keySecret": "issuer", "usersSecret": "users"}}},
    "appDefaults": {"memoryMB": 256, "diskMB": 512},
}


@pytest.mark.parametrize("values", [{}, API_OIDC, SMALL_ISSUER], ids=["defaults", "api-oidc-ingress", "small-issuer"])
def test_lint_is_clean(values):
    report = helm.lint(CHART, values, strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_default_render():
    rendered = ce.render()
    objs = by_kind(rendered)
    assert ("CFDomain", "default-app-domain") not in objs

    root = objs[("Namespace", "cf")]
    assert root["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    # The CF ClusterRoles are exactly what the controller would apply, and the only
    # ClusterRoles the controller may bind; it may not write any (Helm owns them).
    shipped = [o for o in rendered["cf-cluster-roles.yaml"]]
    assert shipped == printed_cluster_roles()
    names = sorted(o["metadata"]["name"] for o in shipped)
    assert len(names) == 11 and all(n.startswith("kubefoundry:") for n in names)
    role = objs[("ClusterRole", CONTROLLER)]
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named and all(sorted(r["resourceNames"]) == names for r in named)
    assert [r["verbs"] for r in named] == [["bind"]]
    assert not [r for r in role["rules"] if "clusterroles" in r["resources"] and r.get("resourceNames") is None]
    # No wildcards anywhere in the controller's RBAC.
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    binding = objs[("ClusterRoleBinding", CONTROLLER)]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": CONTROLLER, "namespace": NAMESPACE}]
    lease_role = objs[("Role", f"{CONTROLLER}-leader-election")]
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert lease_role["rules"][1]["resourceNames"] == ["kubefoundry-controller"]

    deployment = objs[("Deployment", CONTROLLER)]
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["serviceAccountName"] == CONTROLLER
    c = container(deployment)
    assert c["image"] == "ghcr.io/kubefoundry/kubefoundry:0.1.0"
    assert c["args"] == ["controller", "--root-namespace=cf", f"--lease-namespace={NAMESPACE}",
                         "--metrics-addr=0.0.0.0:8080", "--manage-cluster-roles=false",
                         "--app-memory-mb=1024", "--app-disk-mb=1024", "--app-log-rate-limit=-1"]
    assert env_of(deployment)["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    # The restricted Pod Security Standard.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert objs[("PodDisruptionBudget", CONTROLLER)]["spec"]["maxUnavailable"] == 1

    # The API, on by default: two replicas behind a PDB, Kubernetes credentials only, its links
    # under the in-cluster Service URL (no Ingress, no api.url).
    api = objs[("Deployment", API)]
    assert api["spec"]["replicas"] == 2 and objs[("PodDisruptionBudget", API)]["spec"]["minAvailable"] == 1
    assert container(api)["args"] == [
        "api", "--listen=0.0.0.0:8080", f"--external-url=http://{API}.{NAMESPACE}.svc", "--root-namespace=cf",
        "--package-dir=/var/lib/kubefoundry/packages", "--auth=kubernetes",
        "--app-memory-mb=1024", "--app-disk-mb=1024", "--app-log-rate-limit=-1"]
    assert container(api)["securityContext"] == c["securityContext"]
    assert container(api)["volumeMounts"] == [{"name": "packages", "mountPath": "/var/lib/kubefoundry/packages"}]
    rules = objs[("ClusterRole", API)]["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    impersonated = [r["resources"] for r in rules if r["verbs"] == ["impersonate"]]
    assert impersonated == [["users"], ["groups"], ["serviceaccounts"]]
    assert {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]} in rules
    assert not [o for o in objs if o[0] == "Role" and o[1].startswith(API)], "no Secrets outside issuer mode"


def test_render_api_with_oidc_ingress_and_a_default_domain():
    objs = by_kind(ce.render(API_OIDC))
    controller = container(objs[("Deployment", CONTROLLER)])
    assert "--ingress-class=nginx" in controller["args"] and "--user-prefix=oidc:" in controller["args"]
    assert controller["image"] == "ghcr.io/kubefoundry/kubefoundry@sha256:" + "a" * 64

    api = objs[("Deployment", API)]
    assert api["spec"]["replicas"] == 2 and api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert api["spec"]["template"]["spec"]["serviceAccountName"] == API
    assert container(api)["args"][0] == "api" and container(api)["image"] == controller["image"]
    args = container(api)["args"]
    # The URL comes from the Ingress host, https for its TLS Secret.
    assert "--external-url=https://api.example.com" in args and "--auth=oidc" in args
    assert "--oidc-issuer-url=https://uaa.example.com/oauth/token" in args
    assert "--oidc-groups-claim=scope" in args and "--user-prefix=oidc:" in args
    assert not [a for a in args if a.startswith(("--oidc-login-url", "--oidc-jwks-url", "--users-secret"))]
    assert objs[("PodDisruptionBudget", API)]["spec"]["minAvailable"] == 1
    assert objs[("Service", API)]["spec"]["ports"][0]["targetPort"] == "http"
    ingress = objs[("Ingress", API)]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": ["api.example.com"], "secretName": "api-tls"}]
    assert ingress["rules"][0]["host"] == "api.example.com"

    domain = objs[("CFDomain", "default-app-domain")]
    assert domain["metadata"]["namespace"] == "cf"
    assert domain["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert domain["spec"] == {"name": "apps.example.com", "tlsSecretName": "apps-tls"}


def test_render_small_install_with_issuer_auth():
    objs = by_kind(ce.render(SMALL_ISSUER))
    assert ("Namespace", "cf-root") not in objs and ("Namespace", "cf") not in objs
    controller = objs[("Deployment", CONTROLLER)]
    assert controller["spec"]["replicas"] == 1
    assert ("PodDisruptionBudget", CONTROLLER) not in objs, "no PDB for a single replica"
    assert "--root-namespace=cf-root" in container(controller)["args"]
    assert env_of(controller)["RUST_LOG"] == "debug"
    rules = objs[("ClusterRole", CONTROLLER)]["rules"]
    assert rules[-1] == {"apiGroups": ["kubefoundry.dev"], "resources": ["cfapps/finalizers"], "verbs": ["update"]}

    assert "--app-memory-mb=256" in container(controller)["args"]

    api = objs[("Deployment", API)]
    args = container(api)["args"]
    for arg in ["--external-url=http://localhost:8080", "--root-namespace=cf-root", "--auth=issuer",
                "--users-secret=users", "--issuer-key-secret=issuer", "--admin-group=system:masters",
                "--app-memory-mb=256", "--app-disk-mb=512"]:
        assert arg in args, (arg, args)
    assert ("Ingress", API) not in objs
    # The issuer reads its two Secrets by name in the root namespace, and may create the key.
    issuer = objs[("Role", f"{API}-issuer")]
    assert issuer["metadata"]["namespace"] == "cf-root"
    assert issuer["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["users", "issuer"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    assert objs[("RoleBinding", f"{API}-issuer")]["subjects"][0]["name"] == API


def test_api_can_be_left_out():
    objs = by_kind(ce.render({"api": {"enabled": False}}))
    assert not [k for k in objs if k[1].startswith(API)], sorted(objs)
    assert "api.enabled=false" in ce.notes({"api": {"enabled": False}})


def test_notes_say_how_to_reach_cf():
    default = ce.notes()
    assert "kubectl get cf -A" in default and "--set api.url=http://localhost:8080" in default
    assert f"cf api http://{API}.{NAMESPACE}.svc" in default
    assert "kubefoundry hash-password" in ce.notes(SMALL_ISSUER)
    with_api = ce.notes(API_OIDC)
    assert "cf api https://api.example.com" in with_api and "cf login --sso" in with_api
    assert "*.apps.example.com" in with_api


# --- bad values ----------------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"controller": {"replicas": 0}}, "at '/controller/replicas': minimum: got 0, want 1"),
    ({"contoller": {"replicas": 2}}, "additional properties 'contoller' not allowed"),
    ({"api": {"auth": {"mode": "ldap"}}}, "at '/api/auth/mode': value must be one of 'kubernetes', 'issuer', 'oidc'"),
    ({"api": {"replicas": 1}}, "at '/api/replicas': minimum: got 1, want 2"),
    ({"rootNamespace": {"name": "Not_Valid"}}, "at '/rootNamespace/name': 'Not_Valid' does not match pattern"),
    ({"defaultAppDomain": {"name": "not a domain"}}, "at '/defaultAppDomain/name': 'not a domain' does not match"),
    ({"api": {"url": "ftp://api"}}, "at '/api/url': 'ftp://api' does not match pattern"),
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
    ({"controller": {"resources": {"limits": {"memory": "lots"}}}}, "at '/controller/resources/limits/memory': 'lots'"),
], ids=lambda v: str(v)[:40] if isinstance(v, dict) else None)
def test_schema_rejects_bad_values(values, message):
    chart = helm.Chart.load(CHART)
    with pytest.raises(helm.HelmValuesError) as rejected:
        chart.validate_schema(values)
    assert message in str(rejected.value)
    # Rendering (and so install and upgrade) refuses them the same way.
    with pytest.raises(helm.HelmValuesError, match="don't meet the specifications of the schema"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("values, message", [
    ({"api": {"ingress": {"enabled": True}}}, "api.ingress.host is required when api.ingress.enabled=true"),
    ({"api": {"auth": {"mode": "oidc"}}}, "api.auth.mode=oidc needs api.auth.oidc.issuerURL"),
    ({"rootNamespace": {"name": NAMESPACE}}, f'rootNamespace.name "{NAMESPACE}" is the release namespace'),
], ids=["ingress-host", "oidc-issuer", "root-is-release-ns"])
def test_inconsistent_values_fail_with_what_to_set(values, message):
    with pytest.raises(helm.HelmRenderError) as rejected:
        helm.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(rejected.value)


# --- generated files -------------------------------------------------------------------------

def test_generated_files_are_in_sync():
    """The chart's crds/ and CF ClusterRoles, and deploy/, are what scripts/render-deploy.sh
    writes (the Rust test tests/chart_in_sync.rs checks the first two without Helm)."""
    stale = [str(p.relative_to(deploy_render.REPO)) for p, text in deploy_render.expected_files().items()
             if not p.is_file() or p.read_text() != text]
    stale += [f"{p.relative_to(deploy_render.REPO)} (generated by nothing)" for p in deploy_render.stale_files()]
    assert not stale, f"out of date: {stale}; run scripts/render-deploy.sh"


# --- install, upgrade, uninstall -------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    sim = start_sim(tls=False, workdir=tmp_path_factory.mktemp("chart-sim"))
    api = sim.api_client()
    yield sim, api
    api.close()
    stop_sim(sim)


def not_found(call, *args) -> bool:
    try:
        call(*args)
    except client.ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def test_install_upgrade_uninstall(cluster):
    sim, api = cluster
    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    ext, custom = client.ApiextensionsV1Api(api), client.CustomObjectsApi(api)
    with helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace=NAMESPACE) as cfg:
        # --- install: CRDs first, then everything, waited for with kstatus.
        release = cfg.install(CHART, RELEASE, {}, create_namespace=True, wait="watcher", timeout=60)
        assert release["status"] == "deployed" and f"cf api http://{API}.{NAMESPACE}.svc" in release["notes"]
        crds = ext.list_custom_resource_definition().items
        cf_crds = {c.metadata.name for c in crds if c.spec.group == "kubefoundry.dev"}
        assert len(cf_crds) == 13
        deploy = apps.read_namespaced_deployment(CONTROLLER, NAMESPACE)
        assert deploy.status.ready_replicas == 2
        assert apps.read_namespaced_deployment(API, NAMESPACE).status.ready_replicas == 2
        assert core.read_namespace("cf").metadata.annotations["helm.sh/resource-policy"] == "keep"
        assert core.read_namespaced_service_account(CONTROLLER, NAMESPACE)
        # (Helm 4 labels everything it applies app.kubernetes.io/managed-by=Helm.)
        cf_roles = rbac.list_cluster_role(label_selector="kubefoundry.dev/role-type").items
        assert len(cf_roles) == 11

        # CF data made while installed.
        custom.create_namespaced_custom_object("kubefoundry.dev", "v1alpha1", "cf", "cforgs", {
            "apiVersion": "kubefoundry.dev/v1alpha1", "kind": "CFOrg",
            "metadata": {"name": "org-1"}, "spec": {"displayName": "org one"}})

        # --- upgrade: a third replica and a default domain.
        release = cfg.upgrade(CHART, RELEASE, {"controller": {"replicas": 3},
                                               "defaultAppDomain": {"name": "apps.example.com"}},
                              wait="watcher", timeout=60)
        assert release["revision"] == 2
        assert apps.read_namespaced_deployment(CONTROLLER, NAMESPACE).status.ready_replicas == 3
        domain = custom.get_namespaced_custom_object("kubefoundry.dev", "v1alpha1", "cf", "cfdomains",
                                                     "default-app-domain")
        assert domain["spec"]["name"] == "apps.example.com"

        # --- uninstall: the release's objects go; CF data stays (CRDs, root namespace, orgs,
        # the default domain).
        cfg.uninstall(RELEASE, wait="watcher", timeout=60)
        for read, args in [
            (apps.read_namespaced_deployment, (CONTROLLER, NAMESPACE)),
            (core.read_namespaced_service_account, (CONTROLLER, NAMESPACE)),
            (rbac.read_cluster_role, (CONTROLLER,)),
            (rbac.read_cluster_role_binding, (CONTROLLER,)),
            (apps.read_namespaced_deployment, (API, NAMESPACE)),
            (rbac.read_cluster_role, (API,)),
            (rbac.read_cluster_role, ("kubefoundry:space_developer",)),
        ]:
            assert not_found(read, *args), f"{args} survived uninstall"
        assert {c.metadata.name for c in ext.list_custom_resource_definition().items} >= cf_crds
        assert core.read_namespace("cf").status.phase == "Active"
        assert custom.get_namespaced_custom_object("kubefoundry.dev", "v1alpha1", "cf", "cforgs", "org-1")
        assert custom.get_namespaced_custom_object("kubefoundry.dev", "v1alpha1", "cf", "cfdomains",
                                                   "default-app-domain")
        wait_for(lambda: not core.list_namespaced_pod(NAMESPACE).items, timeout=20, what="controller pods gone")

        # Reinstalling the same release over the kept data works: Helm adopts the kept root
        # namespace and default domain, which still carry its ownership metadata.
        cfg.install(CHART, RELEASE, {"defaultAppDomain": {"name": "apps.example.com"}}, wait="watcher", timeout=60)
        assert apps.read_namespaced_deployment(CONTROLLER, NAMESPACE).status.ready_replicas == 2
        cfg.uninstall(RELEASE, wait="watcher", timeout=60)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed (scripts/test installs it)")
def test_plain_manifests_apply_with_kubectl(tmp_path):
    """`kubectl apply -k deploy/` (what GitOps tools do with the directory) installs the same."""
    sim = start_sim(tls=False, workdir=tmp_path)
    api = sim.api_client()
    try:
        run = subprocess.run(["kubectl", "--kubeconfig", str(sim.kubeconfig), "apply", "--server-side", "-k",
                              str(deploy_render.DEPLOY)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        apps = client.AppsV1Api(api)
        wait_for(lambda: apps.read_namespaced_deployment(CONTROLLER, NAMESPACE).status.ready_replicas == 2,
                 timeout=30, what="the controller Deployment ready")
        assert len(client.RbacAuthorizationV1Api(api).list_cluster_role(
            label_selector="kubefoundry.dev/role-type").items) == 11
    finally:
        api.close()
        stop_sim(sim)
