"""The push scenario the API least-privilege suite drives through `kubefoundry api`, over plain
HTTP as the cf CLI would: an admin (the API's own token issuer) makes an org, a space and roles;
a space developer (issuer login) pushes a docker app (package, build, droplet, route, start),
reads its stats and recent logs, restarts an instance, meets the uniqueness rules, renames it and frees its old
name; a ServiceAccount (a Kubernetes token, checked with TokenReview) lists and scales it; then
the admin deletes the org through a job. Every step leans on something the API does as itself,
so a rule missing from the chart's API RBAC breaks a step, or shows as a denial in its log."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Callable

import requests

import chartenv as ce
from cf_scenario import Outcome

IMAGE = "nginx:1.27"
DOMAIN = "apps.example.com"


class Broken(Exception):
    """A step saw the API answer wrongly."""


@dataclass
class Users:
    """Who takes part: issuer users with their passwords, and a ServiceAccount token."""

    admin_password: str
    developer: str
    developer_password: str
    service_account: str  # system:serviceaccount:<ns>:<name>
    service_account_token: str


@dataclass
class Run:
    url: str
    users: Users
    step_timeout: float
    tokens: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)

    def call(self, who: str, method: str, path: str, body=None, want: tuple = (200, 201, 202, 204)) -> requests.Response:
        headers = {"Authorization": f"bearer {self.tokens[who]}"}
        try:
            r = requests.request(method, self.url + path, json=body, headers=headers, timeout=30)
        except requests.RequestException as e:
            raise Broken(f"{method} {path}: {e}") from e
        if r.status_code not in want:
            raise Broken(f"{method} {path} as {who}: {r.status_code} {r.text[:300]}")
        return r

    def json(self, who: str, method: str, path: str, body=None) -> dict:
        r = self.call(who, method, path, body)
        return r.json() if r.content else {}

    def until(self, what: str, probe: Callable[[], object]):
        """Polls `probe` until it returns something truthy; a Broken it raises counts as not yet."""
        deadline = time.monotonic() + self.step_timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = probe()
                if value:
                    return value
            except Broken as e:
                last = str(e)
            time.sleep(0.2)
        raise Broken(f"timed out waiting for {what}" + (f" (last: {last})" if last else ""))


def login(url: str, username: str, password: str) -> str:
    r = requests.post(f"{url}/oauth/token", timeout=30,
                      headers={"Authorization": "Basic " + base64.b64encode(b"cf:").decode()},
                      data={"grant_type": "password", "username": username, "password": password})
    if r.status_code != 200:
        raise Broken(f"login {username}: {r.status_code} {r.text[:300]}")
    return r.json()["access_token"]


def _wait_up(run: Run) -> None:
    # The API binds its port only once its caches hold a first view, which takes list and watch.
    def up():
        try:
            return requests.get(run.url + "/", timeout=2).status_code == 200
        except requests.RequestException as e:
            raise Broken(str(e)) from e
    run.until("the API to answer GET /", up)


def _admin_builds_the_tree(run: Run) -> None:
    run.tokens["admin"] = login(run.url, "admin", run.users.admin_password)
    org = run.json("admin", "POST", "/v3/organizations", {"name": "lp-org"})["guid"]
    space = run.until("the org's namespace", lambda: run.json(
        "admin", "POST", "/v3/spaces", {"name": "lp-space", "relationships": {"organization": {"data": {"guid": org}}}}))
    run.ids.update(org=org, space=space["guid"])
    # The developer by user name (the cf CLI's set-space-role), the ServiceAccount by GUID.
    for who in (run.users.developer, run.users.service_account):
        user = {"guid": who} if who.startswith("system:serviceaccount:") else {"username": who}
        run.json("admin", "POST", "/v3/roles", {"type": "organization_user", "relationships": {
            "user": {"data": user}, "organization": {"data": {"guid": org}}}})
        run.json("admin", "POST", "/v3/roles", {"type": "space_developer", "relationships": {
            "user": {"data": user}, "space": {"data": {"guid": space["guid"]}}}})


def _developer_pushes(run: Run) -> None:
    run.tokens["dev"] = login(run.url, run.users.developer, run.users.developer_password)
    space = run.ids["space"]
    # The space namespace and the role's bindings come from the controller.
    app = run.until("the developer's app create", lambda: run.json("dev", "POST", "/v3/apps", {
        "name": "web", "relationships": {"space": {"data": {"guid": space}}},
        "lifecycle": {"type": "docker", "data": {}}}))
    guid = run.ids["app"] = app["guid"]
    package = run.json("dev", "POST", "/v3/packages", {
        "type": "docker", "relationships": {"app": {"data": {"guid": guid}}}, "data": {"image": IMAGE}})
    build = run.json("dev", "POST", "/v3/builds", {"package": {"guid": package["guid"]}})
    droplet = run.until("the build to stage", lambda: (
        b := run.json("dev", "GET", f"/v3/builds/{build['guid']}"))["state"] == "STAGED" and b["droplet"]["guid"])
    run.json("dev", "PATCH", f"/v3/apps/{guid}/relationships/current_droplet", {"data": {"guid": droplet}})
    domain = run.json("dev", "GET", f"/v3/organizations/{run.ids['org']}/domains/default")
    if domain.get("name") != DOMAIN:
        raise Broken(f"default domain is {domain.get('name')!r}, want {DOMAIN}")
    route = run.json("dev", "POST", "/v3/routes", {"host": "web", "relationships": {
        "space": {"data": {"guid": space}}, "domain": {"data": {"guid": domain["guid"]}}}})
    run.json("dev", "POST", f"/v3/routes/{route['guid']}/destinations", {"destinations": [{"app": {"guid": guid}}]})
    run.json("dev", "POST", f"/v3/apps/{guid}/actions/start")


def _developer_sees_it_run(run: Run) -> None:
    guid = run.ids["app"]

    def running():
        stats = run.json("dev", "GET", f"/v3/apps/{guid}/processes/web/stats")["resources"]
        return stats and all(s["state"] == "RUNNING" for s in stats)
    run.until("the web instance to run (process stats from the Pod cache)", running)

    def logs():
        read = run.json("dev", "GET", f"/api/v1/read/{guid}?envelope_types=LOG&limit=1000")
        sources = {e["tags"].get("source_type", "") for e in read["envelopes"]["batch"]}
        # APP/PROC/WEB lines are the containers' logs (Pod logs, read by the API itself).
        if "APP/PROC/WEB" not in sources:
            raise Broken(f"log sources {sorted(sources)}")
        return True
    run.until("recent logs with the container's lines", logs)
    # cf restart-app-instance, as the developer: the Pod is deleted as the caller, which the
    # space developer ClusterRole allows.
    run.call("dev", "DELETE", f"/v3/apps/{guid}/processes/web/instances/0", want=(204,))


def _names_stay_unique(run: Run) -> None:
    space = run.ids["space"]
    body = {"name": "web", "relationships": {"space": {"data": {"guid": space}}}, "lifecycle": {"type": "docker", "data": {}}}
    r = run.call("dev", "POST", "/v3/apps", body, want=(422,))
    detail = r.json()["errors"][0]["detail"]
    if detail != "App with the name 'web' already exists.":
        raise Broken(f"duplicate app name: {detail}")
    # A rename frees the old name at once.
    run.json("dev", "PATCH", f"/v3/apps/{run.ids['app']}", {"name": "web-blue"})
    run.json("dev", "POST", "/v3/apps", body)


def _service_account_scales(run: Run) -> None:
    run.tokens["sa"] = run.users.service_account_token
    apps = run.json("sa", "GET", "/v3/apps?names=web-blue")["resources"]
    if [a["guid"] for a in apps] != [run.ids["app"]]:
        raise Broken(f"the ServiceAccount lists {apps}")
    scaled = run.json("sa", "POST", f"/v3/apps/{run.ids['app']}/processes/web/actions/scale", {"instances": 2})
    if scaled["instances"] != 2:
        raise Broken(f"scaled to {scaled['instances']}")


def _admin_deletes_the_org(run: Run) -> None:
    r = run.call("admin", "DELETE", f"/v3/organizations/{run.ids['org']}", want=(202,))
    job = r.headers["Location"].removeprefix(run.url)

    def done():
        state = run.json("admin", "GET", job)
        if state["state"] == "FAILED":
            raise Broken(f"org delete job failed: {state['errors']}")
        return state["state"] == "COMPLETE"
    run.until("the org delete job", done)


STEPS: list[tuple[str, Callable[[Run], None]]] = [
    ("API up", _wait_up),
    ("admin builds org, space and roles", _admin_builds_the_tree),
    ("developer pushes a docker app", _developer_pushes),
    ("developer sees it run, with logs", _developer_sees_it_run),
    ("names stay unique", _names_stay_unique),
    ("ServiceAccount lists and scales", _service_account_scales),
    ("admin deletes the org", _admin_deletes_the_org),
]


def run(url: str, users: Users, api: ce.LocalProcess, step_timeout: float) -> Outcome:
    """Runs the steps; stops at the first that breaks, or at an RBAC denial in the API's log."""
    start = time.monotonic()
    state = Run(url, users, step_timeout)
    timings = []
    for name, step in STEPS:
        began = time.monotonic()
        try:
            step(state)
        except Broken as e:
            kind = "timeout" if str(e).startswith("timed out") else "broken"
            return Outcome(False, str(e), kind, name, time.monotonic() - start)
        if (denials := api.denials()):
            return Outcome(False, f"RBAC denial in the API log: {denials[0].strip()[:400]}", "denied", name,
                           time.monotonic() - start)
        if (code := api.exited()) is not None:
            return Outcome(False, f"the API exited with {code}: {api.tail(5)}", "exited", name, time.monotonic() - start)
        timings.append((name, round(time.monotonic() - began, 2)))
    return Outcome(True, seconds=time.monotonic() - start, timings=timings)
