"""Least privilege, proven for the CF API: `kubefoundry api` runs as a local process against
`kubefoundry sim --tls`, authenticated only by a token of the chart's API ServiceAccount (so the
chart's RBAC is all it has), with the chart's own arguments in issuer mode, the mode that needs
the most (TokenReview for Kubernetes tokens, and the issuer's Secrets).

- The push scenario (api_scenario.py) passes through it: issuer logins, an org tree, a docker
  app pushed, started, watched and logged, name claims, a ServiceAccount caller, an org deleted
  through a job; and the API never logs an RBAC denial.
- The sim's audit log shows every verb on every resource the API's rules grant was used.
- Then each rule of the API's ClusterRole and issuer Role is removed in turn, in a fresh cluster
  each: a step must break (or the API log a denial, or exit). A rule whose removal breaks
  nothing is surplus and fails the test.

The controller runs as its chart ServiceAccount too; test_least_privilege.py proves its rules.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from kubernetes import client, config as kconfig

import api_scenario
import chartenv as ce
from deploy_render import CHART, NAMESPACE, RELEASE
from support import sim_binary, start_sim, stop_sim

API_SA = f"{RELEASE}-api"
VALUES = {"api": {"auth": {"mode": "issuer"}}, "defaultAppDomain": {"name": api_scenario.DOMAIN}}
STEP_TIMEOUT = 30.0
REMOVAL_STEP_TIMEOUT = 12.0
WORKERS = 3
ADMIN_PASSWORD = "admin-secret"
DEVELOPER, DEVELOPER_PASSWORD = "dana", "dana-secret"
# A CI deployer: a ServiceAccount presenting its Kubernetes token to the API.
DEPLOYER_NS, DEPLOYER = "ci", "deployer"


def hash_password(password: str) -> str:
    return subprocess.run([str(sim_binary()), "hash-password"], input=password + "\n", capture_output=True,
                          text=True, check=True).stdout.strip()


def fixtures() -> list[dict]:
    """What the scenario brings to the cluster: the issuer's users and the deployer."""
    users = {"admin": {"passwordHash": hash_password(ADMIN_PASSWORD), "admin": True},
             DEVELOPER: {"passwordHash": hash_password(DEVELOPER_PASSWORD), "admin": False}}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kubefoundry-users", "namespace": ce.ROOT_NAMESPACE},
         "stringData": {"users.yaml": yaml.safe_dump(users)}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEPLOYER_NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEPLOYER, "namespace": DEPLOYER_NS}},
    ]


def sa_token(api, namespace: str, name: str) -> str:
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    return ce._call(api, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", request)["status"]["token"]


def run_stack(sim, api, rendered: dict, workdir: Path, step_timeout: float):
    """The controller and the API, each as its chart ServiceAccount, through one scenario."""
    controller_kubeconfig = ce.token_kubeconfig(sim, api, NAMESPACE, f"{RELEASE}-controller",
                                                workdir / "controller.kubeconfig")
    controller = ce.Controller(ce.controller_args(rendered["controller-deployment.yaml"][0]), controller_kubeconfig,
                               workdir / "controller.log", f"lp-api-{workdir.name}")
    kubeconfig = ce.token_kubeconfig(sim, api, NAMESPACE, API_SA, workdir / "api.kubeconfig")
    port = ce.free_port()
    (workdir / "packages").mkdir(exist_ok=True)
    args = ce.api_args(rendered["api-deployment.yaml"][0], port, workdir / "packages")
    server = ce.Api(args, kubeconfig, workdir / "api.log", port)
    users = api_scenario.Users(ADMIN_PASSWORD, DEVELOPER, DEVELOPER_PASSWORD,
                               f"system:serviceaccount:{DEPLOYER_NS}:{DEPLOYER}", sa_token(api, DEPLOYER_NS, DEPLOYER))
    try:
        outcome = api_scenario.run(server.url, users, server, step_timeout)
    finally:
        server.stop()
        controller.stop()
    return outcome, server


@pytest.fixture(scope="module")
def rendered():
    return ce.render(VALUES)


@pytest.fixture(scope="module")
def baseline(rendered, tmp_path_factory):
    """A TLS sim (so bearer tokens are sent) with the chart installed by Helm, and one run."""
    workdir = tmp_path_factory.mktemp("lp-api")
    sim = start_sim(tls=True, workdir=workdir, env=ce.AUDIT_ENV)
    api = sim.api_client()
    try:
        with helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace=NAMESPACE) as cfg:
            cfg.install(CHART, RELEASE, VALUES, create_namespace=True, wait="watcher", timeout=60)
        for obj in fixtures():
            ce.apply(api, obj)
        outcome, server = run_stack(sim, api, rendered, workdir, STEP_TIMEOUT)
        yield sim, outcome, server
    finally:
        api.close()
        stop_sim(sim)


def test_api_serves_the_push_scenario_as_the_chart_service_account(baseline):
    sim, outcome, server = baseline
    assert outcome.ok, f"{outcome.step}: {outcome.evidence}\n--- API log ---\n{server.tail(40)}"
    assert server.denials() == []
    # Really only the ServiceAccount: its token may not read a Secret the issuer does not use.
    as_sa = kconfig.new_client_from_config(config_file=str(server.log.parent / "api.kubeconfig"))
    with pytest.raises(client.ApiException) as denied:
        client.CoreV1Api(as_sa).read_namespaced_secret("apps-tls", ce.ROOT_NAMESPACE)
    assert denied.value.status == 403
    as_sa.close()
    print(f"scenario in {outcome.seconds:.1f}s: {outcome.timings}")


def test_every_granted_permission_is_used(baseline, rendered):
    """Every verb on every resource the API's rules grant was requested by the API (the sim's
    audit log). `impersonate` is checked per impersonated kind: users, groups, serviceaccounts."""
    sim, outcome, _ = baseline
    assert outcome.ok
    used = ce.audited(sim, f"system:serviceaccount:{NAMESPACE}:{API_SA}")
    objs = ce.rbac_objects(rendered)
    granted = {(g, r, v) for i, j, _ in ce.rules_of(objs, API_SA) for rule in [objs[i]["rules"][j]]
               for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"] if v != "impersonate"}
    unused = sorted(granted - used)
    assert not unused, f"granted but never used by the API (surplus, or a scenario gap): {unused}"


@pytest.fixture(scope="module")
def seeded(rendered, tmp_path_factory) -> tuple[Path, list[dict]]:
    objs = ce.rbac_objects(rendered)
    return ce.seed(tmp_path_factory.mktemp("lp-api-seed"), objs, API_SA, fixtures()), objs


def test_every_api_rule_is_needed(rendered, seeded, tmp_path):
    data, objs = seeded
    rules = ce.rules_of(objs, API_SA)
    assert len(rules) >= 8, rules

    def attempt(rule, name, timeout):
        workdir = tmp_path / f"{name}-{rule[0]}-{rule[1]}"
        return ce.removal_run(data, objs, API_SA, rule, workdir,
                              lambda sim, api: run_stack(sim, api, rendered, workdir, timeout)[0])

    ce.prove_each_rule_needed(rules, attempt, REMOVAL_STEP_TIMEOUT, STEP_TIMEOUT, WORKERS)
