"""The PyPI `cloudfoundry-client` (v3 managers, link navigation, job polling, pagination)
driving `kubefoundry dev` end to end: discovery and login against dev's built-in token issuer,
orgs and spaces, a docker app taken from package through build and droplet to a started,
routed and scaled process, filtered app lists, async deletes, and paging by `next` links.

Where the client has no helper (app create, docker package data, builds, current droplet,
route destinations) the test uses the client's own `_create`/`_post`/`_get`/`_patch`, which is
why requirements.txt pins the client's exact version."""

from __future__ import annotations

import base64
import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from cloudfoundry_client.client import CloudFoundryClient
from cloudfoundry_client.errors import InvalidStatusCode
from cloudfoundry_client.v3.entities import ToOneRelationship
from oauth2_client.credentials_manager import OAuthError

from cfdev import LogOnFailure, start_dev, stop_dev_process
from support import wait_for

# dev's default shared domain (src/dev.rs DEFAULT_DOMAIN).
DEFAULT_DOMAIN = "apps.127.0.0.1.nip.io"
IMAGE = "nginx:1.27"


@pytest.fixture(scope="module")
def dev(request, tmp_path_factory):
    running = start_dev(tmp_path_factory.mktemp("cf-dev"))
    plugin = LogOnFailure(running, "dev")
    request.config.pluginmanager.register(plugin, "kubefoundry-dev-log")
    yield running
    request.config.pluginmanager.unregister(plugin)
    stop_dev_process(running.process)


def login(dev) -> CloudFoundryClient:
    client = CloudFoundryClient(dev.url, verify=False)
    client.init_with_user_credentials(dev.username, dev.password)
    return client


@pytest.fixture(scope="module")
def cf(dev) -> CloudFoundryClient:
    return login(dev)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def not_found(call, *args, **kwargs) -> dict:
    """The CF error a call fails with; it must be a 404."""
    with pytest.raises(InvalidStatusCode) as info:
        call(*args, **kwargs)
    assert info.value.status_code == 404, info.value.body
    return info.value.body["errors"][0]


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Recorder:
    """Every request the client's session sends, as (method, url, status)."""

    def __init__(self, client: CloudFoundryClient):
        self.calls: list[tuple[str, str, int]] = []
        client._get_session().hooks["response"].append(self._record)

    def _record(self, response, *_args, **_kwargs):
        self.calls.append((response.request.method, response.request.url, response.status_code))


@pytest.fixture
def org(cf):
    created = cf.v3.organizations.create(unique("org"), suspended=False)
    yield created["guid"]
    try:
        cf.v3.organizations.remove(created["guid"], asynchronous=False)
    except InvalidStatusCode:
        pass


@pytest.fixture
def space(cf, org):
    return cf.v3.spaces.create(unique("space"), org)["guid"]


def docker_app(cf, space: str, name: str):
    return cf.v3.apps._create({"name": name, "relationships": {"space": ToOneRelationship(space)},
                               "lifecycle": {"type": "docker", "data": {}}})


# --- login -----------------------------------------------------------------------------------


def test_discovery_login_and_token_refresh(dev):
    client = CloudFoundryClient(dev.url, verify=False)
    # Everything after `GET /` is built from the root document's links, not from the target.
    assert client.info.api_endpoint == dev.url
    assert client.info.api_v3_url == f"{dev.url}/v3"
    assert client.service_information.token_service == f"{dev.url}/oauth/token"
    with pytest.raises(NotImplementedError):
        client.v2  # noqa: B018 - the property raises when the root has no v2 link

    with pytest.raises(OAuthError) as bad:
        CloudFoundryClient(dev.url, verify=False).init_with_user_credentials(dev.username, dev.password + "x")
    assert bad.value.status_code == 401 and bad.value.error == "unauthorized"

    client.init_with_user_credentials(dev.username, dev.password)
    assert client.refresh_token
    claims = jwt_claims(client._access_token)
    # The cf CLI decodes these locally and panics if user_id or origin is not a string.
    assert claims["user_name"] == dev.username
    assert isinstance(claims["user_id"], str) and isinstance(claims["origin"], str)
    domain = client.v3.domains.get_first(names=DEFAULT_DOMAIN)
    assert domain is not None and domain["name"] == DEFAULT_DOMAIN

    # A token the API rejects as invalid (401 CF-InvalidAuthToken) makes the client refresh
    # once and retry the request with the new token.
    recorder = Recorder(client)
    forged = client._access_token[:-4] + ("AAAA" if not client._access_token.endswith("AAAA") else "BBBB")
    client._access_token = forged
    assert client.v3.domains.get_first(names=DEFAULT_DOMAIN)["guid"] == domain["guid"]
    assert [status for _, _, status in recorder.calls] == [401, 200]
    assert client._access_token != forged
    assert jwt_claims(client._access_token)["user_name"] == dev.username

    # The refresh grant, and reusing the same refresh token (the client's CLI never rewrites
    # its stored one).
    refresh = client.refresh_token
    for _ in range(2):
        again = CloudFoundryClient(dev.url, verify=False)
        again.init_with_token(refresh)
        assert jwt_claims(again._access_token)["user_name"] == dev.username
        assert again.v3.domains.get_first(names=DEFAULT_DOMAIN)["guid"] == domain["guid"]


# --- organizations and spaces ------------------------------------------------------------------


def test_organizations_crud(cf):
    orgs = cf.v3.organizations
    name = unique("org")
    created = orgs.create(name, suspended=False, meta_labels={"suite": "cf-client"})
    guid = created["guid"]
    assert created["name"] == name and created["suspended"] is False
    assert created["metadata"]["labels"] == {"suite": "cf-client"}

    assert orgs.get(guid)["name"] == name
    assert orgs[guid]["guid"] == guid
    assert [o["guid"] for o in orgs.list(names=[name])] == [guid]
    assert guid in [o["guid"] for o in orgs.list(label_selector="suite=cf-client")]
    assert orgs.get_first(guids=[guid])["name"] == name

    # Links are navigable: the org's domains include the shared default domain.
    assert DEFAULT_DOMAIN in [d["name"] for d in created.domains()]
    assert orgs.get_default_domain(guid)["name"] == DEFAULT_DOMAIN

    renamed = unique("org")
    updated = orgs.update(guid, renamed, suspended=True, meta_annotations={"note": "renamed"})
    assert updated["name"] == renamed and updated["suspended"] is True
    assert updated["metadata"]["annotations"] == {"note": "renamed"}
    assert orgs.get(guid)["name"] == renamed
    assert list(orgs.list(names=[name])) == []

    job_guid = orgs.remove(guid)
    assert job_guid
    job = cf.v3.jobs.wait_for_job_completion(job_guid)
    assert job["state"] == "COMPLETE", job
    error = not_found(orgs.get, guid)
    assert error["title"] == "CF-ResourceNotFound" and error["detail"] == "Organization not found"


def test_spaces_crud(cf, org):
    spaces = cf.v3.spaces
    name = unique("space")
    created = spaces.create(name, org)
    guid = created["guid"]
    assert created["name"] == name
    assert created["relationships"]["organization"]["data"]["guid"] == org
    assert created.organization()["guid"] == org

    assert spaces.get(guid)["name"] == name
    assert [s["guid"] for s in spaces.list(names=[name], organization_guids=[org])] == [guid]

    renamed = unique("space")
    assert spaces.update(guid, renamed)["name"] == renamed
    assert [s["name"] for s in spaces.list(organization_guids=[org])] == [renamed]

    # The client's space remove does not wait for the delete job.
    spaces.remove(guid)
    wait_for(lambda: _gone(spaces.get, guid), timeout=20, what="space to be deleted")
    assert not_found(spaces.get, guid)["detail"] == "Space not found"


def _gone(get, guid: str) -> bool:
    try:
        get(guid)
    except InvalidStatusCode as e:
        if e.status_code == 404:
            return True
        raise
    return False


# --- a docker app from package to started, routed and scaled process ----------------------------


def test_docker_app_package_build_droplet_route_start_scale_delete(cf, org, space):
    v3, base = cf.v3, cf.info.api_endpoint
    name = unique("web")
    app = docker_app(cf, space, name)
    guid = app["guid"]
    assert app["state"] == "STOPPED" and app["lifecycle"]["type"] == "docker"
    assert app["relationships"]["space"]["data"]["guid"] == space

    # The client's packages.create cannot send `data.image`.
    package = v3.packages._create({"type": "docker", "relationships": {"app": ToOneRelationship(guid)},
                                   "data": {"image": IMAGE}})
    assert package["type"] == "docker" and package["data"]["image"] == IMAGE
    assert package["state"] == "READY"
    assert [p["guid"] for p in v3.apps.list_packages(guid)] == [package["guid"]]

    # No builds manager: create and poll with the generic methods, as the client's docs say.
    build = v3.packages._post(f"{base}/v3/builds", data={"package": {"guid": package["guid"]}})
    assert build["package"]["guid"] == package["guid"]
    assert build["state"] in ("STAGING", "STAGED")

    def staged():
        current = v3.packages._get(f"{base}/v3/builds/{build['guid']}")
        return current if current["state"] in ("STAGED", "FAILED") else None

    build = wait_for(staged, timeout=30, interval=0.2, what="build to stage")
    assert build["state"] == "STAGED", build["error"]
    droplet_guid = build["droplet"]["guid"]

    droplet = v3.droplets.get(droplet_guid)
    assert droplet["state"] == "STAGED" and droplet["image"] == IMAGE
    assert droplet["relationships"]["app"]["data"]["guid"] == guid
    assert droplet_guid in [d["guid"] for d in v3.apps.list_droplets(guid)]
    assert droplet_guid in [d["guid"] for d in v3.packages.list_droplets(package["guid"])]

    current = v3.apps._patch(f"{base}/v3/apps/{guid}/relationships/current_droplet",
                             ToOneRelationship(droplet_guid))
    assert current["data"]["guid"] == droplet_guid
    assert v3.apps.get(guid).current_droplet()["guid"] == droplet_guid

    # A route on the default domain with the app as its destination.
    domain = v3.organizations.get_default_domain(org)
    assert domain["name"] == DEFAULT_DOMAIN
    route = v3.routes.create(space, domain["guid"], host=name)
    assert route["url"] == f"{name}.{DEFAULT_DOMAIN}"
    assert route["relationships"]["domain"]["data"]["guid"] == domain["guid"]
    mapped = v3.routes._post(route["links"]["destinations"]["href"],
                             data={"destinations": [{"app": {"guid": guid}}]})
    assert [d["app"]["guid"] for d in mapped["destinations"]] == [guid]
    assert [d["app"]["guid"] for d in route.destinations()["destinations"]] == [guid]
    assert [r["guid"] for r in v3.apps.list_routes(guid)] == [route["guid"]]

    # Start through the app's action link (the client only POSTs if the link says so).
    started = v3.apps.get(guid).start()
    assert started["guid"] == guid and started["state"] == "STARTED"
    assert v3.apps.get(guid)["state"] == "STARTED"

    process = v3.processes.get_first(app_guids=[guid], types=["web"])
    assert process is not None and process["type"] == "web" and process["instances"] == 1
    assert [p["guid"] for p in v3.apps.get(guid).processes()] == [process["guid"]]
    scaled = process.scale(data={"instances": 2, "memory_in_mb": 256})
    assert scaled["instances"] == 2 and scaled["memory_in_mb"] == 256
    reread = v3.processes.get(process["guid"])
    assert reread["instances"] == 2 and reread["memory_in_mb"] == 256
    # The same action by the app's process type, the other path the client's docs name.
    by_type = v3.processes._post(f"{base}/v3/apps/{guid}/processes/web/actions/scale", data={"disk_in_mb": 512})
    assert by_type["guid"] == process["guid"]
    assert (by_type["instances"], by_type["memory_in_mb"], by_type["disk_in_mb"]) == (2, 256, 512)

    # The client's other app helpers: env (the route is in VCAP_APPLICATION), manifest, stop.
    vcap = v3.apps.get_env(guid)["application_env_json"]["VCAP_APPLICATION"]
    assert vcap["application_name"] == name and route["url"] in vcap["application_uris"]
    manifest = v3.apps.get_manifest(guid)
    assert f"name: {name}" in manifest and IMAGE in manifest
    stopped = v3.apps.get(guid).stop()
    assert stopped["state"] == "STOPPED" and v3.apps.get(guid)["state"] == "STOPPED"
    assert v3.apps.get(guid).start()["state"] == "STARTED"

    # get with include, and list filters: same name in another space, another app in this one.
    with_space = v3.apps.get(guid, include="space")
    assert with_space.space()["guid"] == space
    other_space = v3.spaces.create(unique("space"), org)["guid"]
    twin = docker_app(cf, other_space, name)["guid"]
    sibling = docker_app(cf, space, unique("web"))["guid"]
    assert sorted(a["guid"] for a in v3.apps.list(names=[name])) == sorted([guid, twin])
    assert [a["guid"] for a in v3.apps.list(names=[name], space_guids=[space])] == [guid]
    assert sorted(a["guid"] for a in v3.apps.list(space_guids=[space])) == sorted([guid, sibling])
    # A list filter is sent comma-joined and percent-encoded (`space_guids=a%2Cb`).
    assert sorted(a["guid"] for a in v3.apps.list(space_guids=[space, other_space])) == sorted([guid, sibling, twin])
    assert v3.apps.len(space_guids=[space, other_space]) == 3

    # Delete is a job the client polls.
    job_guid = v3.apps.remove(guid)
    assert job_guid
    job = v3.jobs.wait_for_job_completion(job_guid)
    assert job["state"] == "COMPLETE", job
    assert not_found(v3.apps.get, guid)["detail"] == "App not found"
    assert [a["guid"] for a in v3.apps.list(names=[name])] == [twin]
    wait_for(lambda: _gone(v3.processes.get, process["guid"]), timeout=20, what="the app's process to go")


def test_cli_matched_errors_through_the_client(cf, org, space):
    """The errors the cf CLI matches on arrive intact as the client's InvalidStatusCode."""

    def error(call, *args, **kwargs) -> tuple[int, dict]:
        with pytest.raises(InvalidStatusCode) as info:
            call(*args, **kwargs)
        return info.value.status_code, info.value.body["errors"][0]

    org_name = cf.v3.organizations.get(org)["name"]
    status, err = error(cf.v3.organizations.create, org_name, suspended=False)
    assert status == 422 and err["detail"] == f"Organization '{org_name}' already exists."
    space_name = cf.v3.spaces.get(space)["name"]
    status, err = error(cf.v3.spaces.create, space_name, org)
    assert status == 422 and err["detail"] == "Name must be unique per organization"

    app = docker_app(cf, space, unique("dup"))
    status, err = error(docker_app, cf, space, app["name"])
    assert status == 422 and err["detail"] == f"App with the name '{app['name']}' already exists."
    # Starting needs a droplet; the start link is a POST the client follows.
    status, err = error(app.start)
    assert status == 422 and err["detail"] == "Assign a droplet before starting this app."
    # An unknown query parameter is a 400, not silently ignored.
    status, err = error(lambda: list(cf.v3.organizations.list(name=org_name)))
    assert status == 400 and err["title"] == "CF-BadQueryParameter"


# --- tasks, user-provided services, private domains ---------------------------------------------


def staged_app(cf, space: str, name: str):
    """A docker app with a staged current droplet (the long way is in the test above)."""
    v3, base = cf.v3, cf.info.api_endpoint
    app = docker_app(cf, space, name)
    package = v3.packages._create({"type": "docker", "relationships": {"app": ToOneRelationship(app["guid"])},
                                   "data": {"image": IMAGE}})
    build = v3.packages._post(f"{base}/v3/builds", data={"package": {"guid": package["guid"]}})
    droplet = wait_for(lambda: v3.packages._get(f"{base}/v3/builds/{build['guid']}")["droplet"],
                       timeout=30, interval=0.2, what="build droplet")
    # Only a precondition here: wait for the droplet itself to be STAGED. That a STAGED build's
    # droplet is STAGED at once is asserted by the test above.
    wait_for(lambda: v3.droplets.get(droplet["guid"])["state"] == "STAGED", timeout=30, interval=0.1,
             what="droplet to stage")
    v3.apps._patch(f"{base}/v3/apps/{app['guid']}/relationships/current_droplet", ToOneRelationship(droplet["guid"]))
    return app


def test_tasks_services_and_private_domains(cf, org, space):
    v3 = cf.v3
    app = staged_app(cf, space, unique("svc"))
    guid = app["guid"]

    task = v3.tasks.create(guid, command="echo hello", name="hello")
    assert task["name"] == "hello" and task["command"] == "echo hello"
    assert [t["guid"] for t in v3.tasks.list(app_guids=[guid])] == [task["guid"]]
    assert v3.tasks.get(task["guid"])["relationships"]["app"]["data"]["guid"] == guid
    canceled = v3.tasks.cancel(task["guid"])
    assert canceled["state"] in ("CANCELING", "FAILED")

    # The client has no user-provided create: the generic _create, then its managers.
    instance = v3.service_instances._create({
        "type": "user-provided", "name": unique("db"), "credentials": {"uri": "postgres://db"}, "tags": ["sql"],
        "relationships": {"space": ToOneRelationship(space)}})
    assert instance["type"] == "user-provided"
    assert [i["guid"] for i in v3.service_instances.list(space_guids=[space])] == [instance["guid"]]
    assert instance.credentials() == {"uri": "postgres://db"}
    renamed = unique("db")
    assert v3.service_instances.update(instance["guid"], name=renamed)["name"] == renamed

    binding = v3.service_credential_bindings.create("db-binding", "app", instance["guid"], guid, None, None, None)
    assert binding["relationships"]["app"]["data"]["guid"] == guid
    assert [b["guid"] for b in v3.service_credential_bindings.list(app_guids=[guid])] == [binding["guid"]]
    assert v3.service_credential_bindings.get(binding["guid"], "details")["credentials"] == {"uri": "postgres://db"}
    v3.service_credential_bindings._remove(binding["guid"])
    wait_for(lambda: _gone(v3.service_credential_bindings.get, binding["guid"]), timeout=20, what="binding to go")
    v3.service_instances.remove(instance["guid"])
    wait_for(lambda: _gone(v3.service_instances.get, instance["guid"]), timeout=20, what="instance to go")

    # A private domain: the client sends explicit JSON nulls for the relationships it omits.
    name = f"{unique('d')}.example.com"
    domain = v3.domains.create(name, organization=ToOneRelationship(org))
    assert domain["relationships"]["organization"]["data"]["guid"] == org
    assert name in [d["name"] for d in v3.organizations.list_domains(org)]
    updated = v3.domains.update(domain["guid"], {"owner": "e2e"}, {"why": "test"})
    assert updated["metadata"] == {"labels": {"owner": "e2e"}, "annotations": {"why": "test"}}
    job = v3.jobs.wait_for_job_completion(v3.domains.remove(domain["guid"]))
    assert job["state"] == "COMPLETE", job
    assert not_found(v3.domains.get, domain["guid"])["detail"] == "Domain not found"


# --- pagination --------------------------------------------------------------------------------


def test_pagination_follows_next_links(dev, space):
    client = login(dev)
    names = sorted(unique(f"page{i}") for i in range(5))
    for name in names:
        docker_app(client, space, name)

    recorder = Recorder(client)
    pages = client.v3.apps.list(space_guids=[space], per_page=2, order_by="name")
    assert pages.total_results == 5
    assert [a["name"] for a in pages] == names
    # Three pages: the first as requested, then each page's absolute `next.href`.
    gets = [(url, status) for method, url, status in recorder.calls if method == "GET"]
    assert [status for _, status in gets] == [200, 200, 200]
    assert all(url.startswith(f"{dev.url}/v3/apps?") for url, _ in gets)
    queries = [parse_qs(urlsplit(url).query) for url, _ in gets]
    assert [q.get("page", ["1"])[0] for q in queries] == ["1", "2", "3"]
    assert all(q["per_page"] == ["2"] and q["space_guids"] == [space] for q in queries)

    descending = [a["name"] for a in client.v3.apps.list(space_guids=[space], per_page=2, order_by="-name")]
    assert descending == names[::-1]
    assert client.v3.apps.len(space_guids=[space], per_page=1) == 5
    first = client.v3.apps.get_first(space_guids=[space], order_by="name")
    assert first["name"] == names[0]
