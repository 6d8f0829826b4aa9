"""Least privilege, proven: `kubefoundry controller` runs as a local process against
`kubefoundry sim --tls`, authenticated only by a token of the chart's controller ServiceAccount,
so the chart's RBAC is all it has.

- With the chart installed by Helm, the controller converges a whole CF tree (orgs, spaces,
  roles, an app with its package, build, droplet, processes, route, service binding and tasks)
  and tears it down again, and never gets an RBAC denial.
- The sim's audit log of that run shows every verb on every resource the rules grant was used.
- The ServiceAccount may bind the CF ClusterRoles but grant nothing else it does not hold, nor
  write any ClusterRole; two replicas elect one leader, both answer their probes, and the
  standby takes over when the leader stops.
- Then each rule of the chart's controller ClusterRole and leader-election Role is removed in
  turn, in a fresh cluster each: something visible must break (an RBAC denial in the
  controller's log, a step that does not converge, or the controller exiting). A rule whose
  removal breaks nothing is surplus and fails the test.

The simulated cluster enforces RBAC like kube-apiserver, including escalation prevention (a Role
or binding may only grant what its author holds, unless it has `escalate` or `bind`), so the
`bind` rule, and the `get` the reader Roles grant onwards, are proven too.

The API's ServiceAccount is proven the same way by test_least_privilege_api.py.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import helm_python as helm
import pytest
from kubernetes import client, config as kconfig

import cf_scenario
import chartenv as ce
from deploy_render import CHART, NAMESPACE, RELEASE
from support import start_sim, stop_sim, wait_for

CONTROLLER_SA = f"{RELEASE}-controller"
STEP_TIMEOUT = 20.0
# Rule removals run in fresh clusters, several at a time; most break within a second or two.
REMOVAL_STEP_TIMEOUT = 8.0
# A passing run lasts past the first renewal of the leader Lease (every 5 s), so a missing
# `update` on the Lease shows.
MIN_RUN_SECONDS = 6.5
WORKERS = int(os.environ.get("KUBEFOUNDRY_LP_WORKERS", "4"))


rbac_objects = ce.rbac_objects


def controller_rules(objs: list[dict]) -> list[tuple[int, int, str]]:
    """(object index, rule index, description) of every rule of the controller's own RBAC."""
    return ce.rules_of(objs, CONTROLLER_SA)


def run_controller(sim, api: client.ApiClient, rendered: dict, workdir: Path, identity: str,
                   step_timeout: float) -> tuple[cf_scenario.Outcome, ce.Controller]:
    kubeconfig = ce.token_kubeconfig(sim, api, NAMESPACE, CONTROLLER_SA, workdir / "controller.kubeconfig")
    args = ce.controller_args(rendered["controller-deployment.yaml"][0])
    controller = ce.Controller(args, kubeconfig, workdir / "controller.log", identity)
    try:
        outcome = cf_scenario.run(api, controller, step_timeout, MIN_RUN_SECONDS)
    finally:
        controller.stop()
    return outcome, controller


@pytest.fixture(scope="module")
def rendered():
    return ce.render()


# Held only to be granted onwards: the org and space reader Roles the controller writes grant
# get (and watch) on spaces and domains, and Kubernetes refuses a Role granting what its author
# does not hold. Removing their rule shows the refusal.
GRANTED_ONWARDS = {("kubefoundry.dev", "cfspaces", "get"), ("kubefoundry.dev", "cfdomains", "get")}



@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A TLS sim (so bearer tokens are sent) with the chart installed by Helm, default values."""
    workdir = tmp_path_factory.mktemp("lp-installed")
    sim = start_sim(tls=True, workdir=workdir, env=ce.AUDIT_ENV)
    api = sim.api_client()
    try:
        with helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace=NAMESPACE) as cfg:
            cfg.install(CHART, RELEASE, {}, create_namespace=True, wait="watcher", timeout=60)
        yield sim, api, workdir
    finally:
        api.close()
        stop_sim(sim)


@pytest.fixture(scope="module")
def baseline(installed, rendered):
    """The controller, as the chart's ServiceAccount, through the whole scenario."""
    sim, api, workdir = installed
    outcome, controller = run_controller(sim, api, rendered, workdir, "lp-installed", STEP_TIMEOUT)
    return outcome, controller


def test_controller_converges_as_the_chart_service_account(installed, baseline):
    sim, api, workdir = installed
    # Really only the ServiceAccount: it may not even list namespaces outside its grants.
    kubeconfig = ce.token_kubeconfig(sim, api, NAMESPACE, CONTROLLER_SA, workdir / "probe.kubeconfig")
    as_sa = kconfig.new_client_from_config(config_file=str(kubeconfig))
    with pytest.raises(client.ApiException) as denied:
        client.CoreV1Api(as_sa).list_namespaced_config_map("default")
    assert denied.value.status == 403
    as_sa.close()

    outcome, controller = baseline
    assert outcome.ok, f"{outcome.step}: {outcome.evidence}\n--- controller log ---\n{controller.tail(40)}"
    assert controller.denials() == []
    # It led through the chart's Lease (and released it when stopped).
    lease = client.CoordinationV1Api(api).read_namespaced_lease("kubefoundry-controller", NAMESPACE)
    assert lease.spec.holder_identity in (None, "lp-installed")
    print(f"converged and tore down in {outcome.seconds:.1f}s: {outcome.timings}")


def test_every_granted_permission_is_used(installed, baseline, rendered):
    """Finer than removing rules: every verb on every resource the controller's rules grant was
    requested by the controller in the baseline run (from the sim's audit log). `bind` is not a
    request (RBAC checks it when a binding is written); removing its rule shows it is needed."""
    sim, _, _ = installed
    used = ce.audited(sim, f"system:serviceaccount:{NAMESPACE}:{CONTROLLER_SA}")
    assert used, "no audit lines from the controller in the sim log"
    objs = rbac_objects(rendered)
    granted = {(g, r, v) for i, j, _ in controller_rules(objs) for rule in [objs[i]["rules"][j]]
               for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"] if v != "bind"}
    unused = sorted(granted - used - GRANTED_ONWARDS)
    assert not unused, f"granted but never used by the controller (surplus, or a scenario gap): {unused}"
    # And nothing it used is outside the grants (the sim would have refused it anyway).
    assert not sorted(used - granted - {(g, r, v) for g, r, v in used if v == "bind"})


def test_the_service_account_grants_only_the_cf_roles(installed):
    """Kubernetes escalation prevention, as the chart's ServiceAccount sees it: it may bind the
    CF ClusterRoles (`bind`), but not grant anything it does not hold, and write no ClusterRole."""
    sim, api, workdir = installed
    kubeconfig = ce.token_kubeconfig(sim, api, NAMESPACE, CONTROLLER_SA, workdir / "escalation.kubeconfig")
    as_sa = kconfig.new_client_from_config(config_file=str(kubeconfig))

    def binding(role: str) -> dict:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": f"probe-{role.replace(':', '-')}", "namespace": ce.ROOT_NAMESPACE},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]}

    try:
        ce.apply(as_sa, binding("kubefoundry:space_auditor"))
        with pytest.raises(client.ApiException) as denied:
            ce.apply(as_sa, binding("cluster-admin"))
        assert denied.value.status == 403
        assert "attempting to grant RBAC permissions not currently held" in json.loads(denied.value.body)["message"]
        # Rewriting a CF ClusterRole to grant everything, then binding it, would be the way around.
        everything = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": {"name": "kubefoundry:space_auditor"},
                      "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
        with pytest.raises(client.ApiException) as denied:
            ce.apply(as_sa, everything)
        assert denied.value.status == 403
        assert 'cannot patch resource "clusterroles"' in json.loads(denied.value.body)["message"]
    finally:
        as_sa.close()
        ce.delete(api, "rbac.authorization.k8s.io/v1", "RoleBinding", ce.ROOT_NAMESPACE, "probe-kubefoundry-space_auditor")


def test_two_replicas_one_leader_both_probed(installed, baseline, rendered):
    """The chart's two replicas, as the chart's ServiceAccount: one holds the Lease, the standby
    answers its probes too (or the kubelet would restart it forever), and takes over as soon as
    the leader stops."""
    sim, api, workdir = installed
    kubeconfig = ce.token_kubeconfig(sim, api, NAMESPACE, CONTROLLER_SA, workdir / "replicas.kubeconfig")
    base = [a for a in ce.controller_args(rendered["controller-deployment.yaml"][0])
            if not a.startswith("--metrics-addr")]
    leases = client.CoordinationV1Api(api)

    def holder():
        return leases.read_namespaced_lease("kubefoundry-controller", NAMESPACE).spec.holder_identity

    def healthy(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    ports = {"replica-a": ce.free_port(), "replica-b": ce.free_port()}
    a = ce.Controller(base + [f"--metrics-addr=127.0.0.1:{ports['replica-a']}"], kubeconfig,
                      workdir / "replica-a.log", "replica-a")
    b = None
    try:
        wait_for(lambda: holder() == "replica-a", timeout=20, what="replica-a to lead")
        b = ce.Controller(base + [f"--metrics-addr=127.0.0.1:{ports['replica-b']}"], kubeconfig,
                          workdir / "replica-b.log", "replica-b")
        wait_for(lambda: healthy(ports["replica-b"]), timeout=20, what="the standby's /healthz")
        assert healthy(ports["replica-a"]) and holder() == "replica-a"
        a.stop()  # SIGTERM: the leader releases the Lease
        wait_for(lambda: holder() == "replica-b", timeout=20, what="replica-b to take over")
        assert a.denials() == [] and b.denials() == []
    finally:
        a.stop()
        if b:
            b.stop()


@pytest.fixture(scope="module")
def seeded(rendered, tmp_path_factory) -> tuple[Path, list[dict]]:
    objs = rbac_objects(rendered)
    return ce.seed(tmp_path_factory.mktemp("lp-seed"), objs, CONTROLLER_SA), objs


def test_every_rule_is_needed(rendered, seeded, tmp_path):
    data, objs = seeded
    rules = controller_rules(objs)
    assert len(rules) > 20, rules

    def attempt(rule, name, timeout):
        workdir = tmp_path / f"{name}-{rule[0]}-{rule[1]}"
        return ce.removal_run(data, objs, CONTROLLER_SA, rule, workdir, lambda sim, api: run_controller(
            sim, api, rendered, workdir, f"lp-{rule[0]}-{rule[1]}", timeout)[0])

    ce.prove_each_rule_needed(rules, attempt, REMOVAL_STEP_TIMEOUT, STEP_TIMEOUT, WORKERS)
