"""Helpers for the chart suites: rendering the chart with real Helm, writing objects to a sim
(server-side apply over plain REST, any kind), ServiceAccount-token kubeconfigs, the chart's
RBAC rules one by one, and `kubefoundry controller` and `kubefoundry api` as local processes
whose logs are searched for RBAC denials."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import helm_python as helm
import yaml
from kubernetes import client

from deploy_render import CHART, NAMESPACE, RELEASE
from support import Sim, _die_with_parent, sim_binary, start_sim, stop_sim

ROOT_NAMESPACE = "cf"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}

# What kube-apiserver (and the sim) says when RBAC denies a request, or refuses a Role or
# binding that would grant more than its author holds. Other 403s (a terminating namespace
# refusing new content) are ordinary and do not count.
DENIAL = re.compile(r'cannot [a-z]+ resource|attempting to grant RBAC permissions not currently held')


def render(values: dict | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, list[dict]]:
    """The chart's templates rendered by Helm 4, parsed: template file name -> objects."""
    chart = helm.Chart.load(CHART)
    manifests = chart.render(values or {}, name=name, namespace=namespace, is_install=True)
    out: dict[str, list[dict]] = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs:
            out[Path(path).name] = docs
    return out


def notes(values: dict | None = None) -> str:
    chart = helm.Chart.load(CHART)
    manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def crds() -> list[dict]:
    return [yaml.safe_load(c["data"]) for c in helm.Chart.load(CHART).crds]


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def path_of(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if kind not in CLUSTER_SCOPED:
        base += f"/namespaces/{namespace}"
    base += f"/{plural(kind)}"
    return f"{base}/{name}" if name else base


def _call(api: client.ApiClient, method: str, path: str, body=None, content_type: str = "application/json",
          query: list | None = None):
    """One REST call through the client's configuration (server, CA, credentials)."""
    headers = {"Accept": "application/json", "Content-Type": content_type}
    method, url, headers, body, post = api.param_serialize(method, path, query_params=query or [],
                                                           header_params=headers, body=body,
                                                           auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, body, post)
    response.read()
    text = response.data.decode() if response.data else ""
    if not 200 <= response.status <= 299:
        raise client.ApiException.from_response(http_resp=response, body=text, data=None)
    return json.loads(text) if text else None


def apply(api: client.ApiClient, obj: dict, manager: str = "e2e") -> dict:
    """Server-side apply of any object (create or update), forcing ownership."""
    meta = obj["metadata"]
    path = path_of(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    return _call(api, "PATCH", path, obj, "application/apply-patch+yaml",
                 [("fieldManager", manager), ("force", "true")])


def merge_patch(api: client.ApiClient, api_version: str, kind: str, namespace: str | None, name: str, patch: dict):
    return _call(api, "PATCH", path_of(api_version, kind, namespace, name), patch, "application/merge-patch+json")


def get(api: client.ApiClient, api_version: str, kind: str, namespace: str | None, name: str) -> dict | None:
    try:
        return _call(api, "GET", path_of(api_version, kind, namespace, name))
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def list_(api: client.ApiClient, api_version: str, kind: str, namespace: str | None = None,
          selector: str | None = None) -> list[dict]:
    path = path_of(api_version, kind, namespace) if namespace or kind in CLUSTER_SCOPED else \
        ("/api/" if "/" not in api_version else "/apis/") + f"{api_version}/{plural(kind)}"
    query = [("labelSelector", selector)] if selector else []
    return _call(api, "GET", path, query=query)["items"]


def delete(api: client.ApiClient, api_version: str, kind: str, namespace: str | None, name: str) -> None:
    try:
        _call(api, "DELETE", path_of(api_version, kind, namespace, name))
    except client.ApiException as e:
        if e.status != 404:
            raise


def wait_established(api: client.ApiClient, names: list[str], timeout: float = 20) -> None:
    ext = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            crd = ext.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                pending.discard(name)
        time.sleep(0.05)
    assert not pending, f"CRDs not established: {pending}"


def rbac_objects(rendered: dict[str, list[dict]]) -> list[dict]:
    """What the chart's processes need besides their Deployments: the release namespace, the
    namespaces, ServiceAccounts, RBAC and the CF ClusterRoles (and whatever else it renders,
    such as the default domain), namespaces first."""
    skip = {"Deployment", "PodDisruptionBudget"}
    objs = [o for docs in rendered.values() for o in docs if o["kind"] not in skip]
    release_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return [release_ns] + sorted(objs, key=lambda o: o["kind"] != "Namespace")


def rules_of(objs: list[dict], prefix: str) -> list[tuple[int, int, str]]:
    """(object index, rule index, description) of every rule of the Roles and ClusterRoles
    whose names start with `prefix` (one component's own RBAC)."""
    out = []
    for i, obj in enumerate(objs):
        if obj["kind"] in ("ClusterRole", "Role") and obj["metadata"]["name"].startswith(prefix):
            for j, rule in enumerate(obj["rules"]):
                names = f" names={len(rule['resourceNames'])}" if rule.get("resourceNames") else ""
                desc = (f"{obj['kind']} {obj['metadata']['name']} rule {j}: {rule['apiGroups']} "
                        f"{rule['resources']}{names} verbs={rule['verbs']}")
                out.append((i, j, desc))
    return out


# The sim's debug log of every request, with its user: an audit log.
AUDIT_ENV = {"RUST_LOG": "info,kubefoundry_sim::api=debug", "NO_COLOR": "1"}
AUDIT_LINE = re.compile(r'request .*verb="?(?P<verb>[a-z]+)"? user="?(?P<user>[^" ]+)"? '
                        r'group="?(?P<group>[^" ]*)"? resource="?(?P<resource>[^" ]*)"? '
                        r'subresource="?(?P<subresource>[^" ]*)"?')


def audited(sim: Sim, user: str) -> set[tuple[str, str, str]]:
    """(group, resource[/subresource], verb) of every request `user` made, from the audit log
    (not discovery, which every user may read)."""
    used = set()
    for line in sim.log.read_text(errors="replace").splitlines():
        m = AUDIT_LINE.search(line)
        if m and m["user"] == user and m["resource"]:
            resource = m["resource"] + (f"/{m['subresource']}" if m["subresource"] else "")
            used.add((m["group"], resource, m["verb"]))
    return used


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token_kubeconfig(sim: Sim, api: client.ApiClient, namespace: str, service_account: str, dest: Path) -> Path:
    """A kubeconfig that authenticates as `namespace/service_account` with a bound token from
    the TokenRequest API (what `kubectl create token` does), so RBAC is all it has."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    token = _call(api, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                  request)["status"]["token"]
    admin = yaml.safe_load(sim.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": service_account, "context": {"cluster": cluster["name"], "user": service_account}}],
        "current-context": service_account,
    }
    dest.write_text(yaml.safe_dump(config))
    return dest


def controller_args(deployment: dict) -> list[str]:
    """The controller container's arguments from the chart's Deployment, with the metrics port
    moved to a free local one (the chart's 0.0.0.0:8080 would collide between test runs)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = [a for a in container["args"] if not a.startswith("--metrics-addr")]
    return args + ["--metrics-addr=127.0.0.1:0"]


def api_args(deployment: dict, port: int, package_dir: Path) -> list[str]:
    """The API container's arguments from the chart's Deployment, listening on a free local
    port (which its links then name) and keeping bits in a scratch directory."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    moved = ("--listen", "--external-url", "--package-dir")
    args = [a for a in container["args"] if not a.startswith(moved)]
    return args + [f"--listen=127.0.0.1:{port}", f"--external-url=http://127.0.0.1:{port}",
                   f"--package-dir={package_dir}"]


class LocalProcess:
    """A `kubefoundry` subcommand as a local process, logging to a file."""

    def __init__(self, args: list[str], kubeconfig: Path, log: Path, env: dict):
        self.log = log
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), NO_COLOR="1", **env)
        with open(log, "wb") as out:
            self.process = subprocess.Popen([str(sim_binary()), *args], stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def denials(self) -> list[str]:
        return [line for line in self.text().splitlines() if DENIAL.search(line)]

    def exited(self) -> int | None:
        return self.process.poll()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class Controller(LocalProcess):
    """`kubefoundry controller` as a local process."""

    def __init__(self, args: list[str], kubeconfig: Path, log: Path, identity: str):
        # A failed Event write is only logged at debug level.
        super().__init__(args, kubeconfig, log, {"POD_NAME": identity,
                                                 "RUST_LOG": "info,kubefoundry::controller::events=debug"})


class Api(LocalProcess):
    """`kubefoundry api` as a local process; `url` once it answers."""

    def __init__(self, args: list[str], kubeconfig: Path, log: Path, port: int):
        super().__init__(args, kubeconfig, log, {"RUST_LOG": "info"})
        self.url = f"http://127.0.0.1:{port}"


# --- proving each rule needed ------------------------------------------------------------

def seed(workdir: Path, objs: list[dict], prefix: str, extra: list[dict] = ()) -> Path:
    """A sim data directory holding the chart's CRDs (established), every object of `objs`
    except the Roles and ClusterRoles named `prefix*` (which each removal run writes itself),
    and `extra`: copying it is much cheaper than installing CRDs into each fresh cluster."""
    sim = start_sim(tls=True, workdir=workdir, extra_args=["--data-dir", str(workdir / "data")])
    api = sim.api_client()
    try:
        all_crds = crds()
        for crd in all_crds:
            apply(api, crd)
        wait_established(api, [c["metadata"]["name"] for c in all_crds])
        mine = {i for i, _, _ in rules_of(objs, prefix)}
        for obj in [o for i, o in enumerate(objs) if i not in mine] + list(extra):
            apply(api, obj)
    finally:
        api.close()
        stop_sim(sim)
    return workdir / "data"


def removal_run(data: Path, objs: list[dict], prefix: str, removed: tuple[int, int, str], workdir: Path,
                run: Callable[[Sim, client.ApiClient], "object"]):
    """A fresh cluster from the seed `data`, the `prefix*` RBAC minus one rule, then `run`."""
    index, rule, _ = removed
    objs = copy.deepcopy(objs)
    del objs[index]["rules"][rule]
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(data, workdir / "data")
    sim = start_sim(tls=True, workdir=workdir, extra_args=["--data-dir", str(workdir / "data")])
    api = sim.api_client()
    try:
        wait_established(api, [c["metadata"]["name"] for c in crds()])
        for i in sorted({i for i, _, _ in rules_of(objs, prefix)}):
            apply(api, objs[i])
        return run(sim, api)
    finally:
        api.close()
        stop_sim(sim)


def prove_each_rule_needed(rules: list[tuple[int, int, str]], attempt: Callable, removal_timeout: float,
                           step_timeout: float, workers: int) -> None:
    """Runs `attempt(rule, name, timeout)` without each rule, `workers` at a time; fails
    naming every rule whose removal broke nothing. Only a run that completes proves a rule
    surplus: a step that timed out under parallel load is retried alone with `step_timeout`,
    and a step that still does not converge is a visible break too."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {r: pool.submit(attempt, r, "rule", removal_timeout) for r in rules}
        results = {r: f.result() for r, f in futures.items()}
    for rule, outcome in list(results.items()):
        if outcome.kind == "timeout":
            results[rule] = attempt(rule, "retry", step_timeout)
    report = "\n".join(
        f"{'SURPLUS' if o.ok else 'needed '} {desc}\n          -> {o.step or 'every step passed'}: "
        f"{o.evidence or 'nothing broke'} ({o.seconds:.1f}s)"
        for (_, _, desc), o in results.items())
    seconds = sorted(o.seconds for o in results.values())
    print(f"{len(results)} runs, median {seconds[len(seconds) // 2]:.1f}s, longest {seconds[-1]:.1f}s")
    print(report)
    surplus = [desc for (_, _, desc), o in results.items() if o.ok]
    assert not surplus, "rules whose removal breaks nothing (remove them from the chart):\n" + "\n".join(surplus)
