"""The Python `kubernetes` client against kubefoundry's simulated cluster: typed CRUD, patches
and watches on ConfigMaps, and kubefoundry's own CRDs (installed from `kubefoundry crds`)
driven through ApiextensionsV1Api and CustomObjectsApi, schema validation included."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid

import pytest
import yaml
from kubernetes import client, dynamic, watch

from support import sim_binary, start_sim, stop_sim, wait_for

GROUP, VERSION = "kubefoundry.dev", "v1alpha1"


def cm_body(name: str, data: dict, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}, "data": data}


def api_error(call, *args, **kwargs) -> client.ApiException:
    with pytest.raises(client.ApiException) as info:
        call(*args, **kwargs)
    return info.value


def status_of(err: client.ApiException) -> dict:
    return json.loads(err.body)


# --- ConfigMaps ----------------------------------------------------------------------------


def test_configmap_crud_and_patches(api, namespace):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, cm_body("alpha", {"a": "1"}, {"suite": "client"}))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None

    # Creating it again is a 409 AlreadyExists Status.
    err = api_error(core.create_namespaced_config_map, namespace, cm_body("alpha", {}))
    assert err.status == 409 and status_of(err)["reason"] == "AlreadyExists"

    core.create_namespaced_config_map(namespace, cm_body("beta", {"b": "2"}, {"suite": "other"}))
    # dryRun=All answers as a create would and stores nothing.
    dry = core.create_namespaced_config_map(namespace, cm_body("dry", {}), dry_run="All")
    assert dry.metadata.name == "dry" and dry.metadata.uid
    assert api_error(core.read_namespaced_config_map, "dry", namespace).status == 404

    # Paging: limit plus the continue token walks the list in name order. Only an unfiltered
    # list says how many items remain; with a selector apiserver cannot know.
    page = core.list_namespaced_config_map(namespace, limit=1, label_selector="suite")
    assert [c.metadata.name for c in page.items] == ["alpha"]
    assert page.metadata._continue and page.metadata.remaining_item_count is None
    page = core.list_namespaced_config_map(namespace, limit=1, label_selector="suite", _continue=page.metadata._continue)
    assert [c.metadata.name for c in page.items] == ["beta"] and not page.metadata._continue
    everything = core.list_namespaced_config_map(namespace).items
    page = core.list_namespaced_config_map(namespace, limit=1)
    assert page.metadata.remaining_item_count == len(everything) - 1

    names = [c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector="suite=client").items]
    assert names == ["alpha"]
    names = [c.metadata.name for c in core.list_namespaced_config_map(namespace, field_selector="metadata.name=beta").items]
    assert names == ["beta"]

    # A dict body goes out as a strategic merge patch; a list as a JSON patch.
    patched = core.patch_namespaced_config_map("alpha", namespace, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    patched = core.patch_namespaced_config_map(
        "alpha", namespace, [{"op": "replace", "path": "/data/a", "value": "one"}, {"op": "remove", "path": "/data/b"}]
    )
    assert patched.data == {"a": "one"}
    # A failing JSON-patch test op is a 422 and changes nothing.
    err = api_error(core.patch_namespaced_config_map, "alpha", namespace, [{"op": "test", "path": "/data/a", "value": "x"}])
    assert err.status == 422
    assert core.read_namespaced_config_map("alpha", namespace).data == {"a": "one"}

    # Replace with a stale resourceVersion is a 409 Conflict; with the current one it lands.
    current = core.read_namespaced_config_map("alpha", namespace)
    stale = cm_body("alpha", {"a": "stale"})
    stale["metadata"]["resourceVersion"] = created.metadata.resource_version
    err = api_error(core.replace_namespaced_config_map, "alpha", namespace, stale)
    assert err.status == 409 and status_of(err)["reason"] == "Conflict"
    fresh = cm_body("alpha", {"a": "fresh"})
    fresh["metadata"]["resourceVersion"] = current.metadata.resource_version
    assert core.replace_namespaced_config_map("alpha", namespace, fresh).data == {"a": "fresh"}

    # Server-side apply through the client's raw patch with an explicit content type.
    applied = core.patch_namespaced_config_map(
        "gamma", namespace, cm_body("gamma", {"g": "1"}), field_manager="e2e-python",
        _content_type="application/apply-patch+yaml",
    )
    assert applied.data == {"g": "1"}
    assert [(m.manager, m.operation) for m in applied.metadata.managed_fields] == [("e2e-python", "Apply")]

    # Deleting a ConfigMap answers with a Success Status naming it, not the object.
    deleted = api.sanitize_for_serialization(core.delete_namespaced_config_map("alpha", namespace))
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    assert deleted["details"]["name"] == "alpha" and deleted["details"]["kind"] == "configmaps"
    err = api_error(core.read_namespaced_config_map, "alpha", namespace)
    assert err.status == 404 and status_of(err)["reason"] == "NotFound"
    assert status_of(err)["details"] == {"name": "alpha", "kind": "configmaps"}


def test_configmap_watch_from_resource_version(api, namespace):
    """List, then watch from the list's resourceVersion: the changes made in between replay in
    order, then live events follow, and `timeout_seconds` ends the stream server-side."""
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, cm_body("before", {"k": "0"}))
    listed = core.list_namespaced_config_map(namespace)
    rv = listed.metadata.resource_version
    assert rv and "before" in [c.metadata.name for c in listed.items]

    core.create_namespaced_config_map(namespace, cm_body("w1", {"k": "1"}))
    core.patch_namespaced_config_map("w1", namespace, {"data": {"k": "2"}})

    events = []
    w = watch.Watch()

    def later_changes():
        # After the replayed history, with the watch open.
        time.sleep(0.5)
        core.delete_namespaced_config_map("w1", namespace)
        core.create_namespaced_config_map(namespace, cm_body("w2", {"k": "3"}))

    writer = threading.Thread(target=later_changes)
    started = time.monotonic()
    writer.start()
    for event in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=3):
        obj = event["object"]
        assert isinstance(obj, client.V1ConfigMap)
        assert obj.metadata.resource_version, "every watch event carries a resourceVersion"
        events.append((event["type"], obj.metadata.name, (obj.data or {}).get("k")))
    elapsed = time.monotonic() - started
    writer.join()

    assert events == [
        ("ADDED", "w1", "1"),
        ("MODIFIED", "w1", "2"),
        ("DELETED", "w1", "2"),
        ("ADDED", "w2", "3"),
    ]
    # The server closed the stream when timeout_seconds ran out (the client never retries then).
    assert 2.5 <= elapsed < 8, elapsed


def test_watch_stop_and_field_selector(api, namespace):
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    for name in ("skip-me", "pick-me"):
        core.create_namespaced_config_map(namespace, cm_body(name, {}))
    w = watch.Watch()
    seen = []
    for event in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv,
                          field_selector="metadata.name=pick-me", timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        w.stop()
    assert seen == [("ADDED", "pick-me")]


def test_restart_keeps_objects_and_expires_older_watches(tmp_path):
    """With --data-dir the objects outlive a restart, but, like a restarted kube-apiserver's
    watch cache, history before it is gone: a watch from an older resourceVersion ends in a
    410 Gone ERROR event, which the client raises so callers re-list."""
    data = tmp_path / "data"
    first = start_sim(tls=False, workdir=tmp_path, extra_args=["--data-dir", str(data)])
    try:
        with first.api_client() as api:
            core = client.CoreV1Api(api)
            created = core.create_namespaced_config_map("default", cm_body("durable", {"k": "v"}))
            rv = created.metadata.resource_version
    finally:
        stop_sim(first)
    second = start_sim(tls=False, workdir=tmp_path, extra_args=["--data-dir", str(data)])
    try:
        with second.api_client() as api:
            core = client.CoreV1Api(api)
            again = core.read_namespaced_config_map("durable", "default")
            assert again.metadata.uid == created.metadata.uid and again.data == {"k": "v"}
            assert again.metadata.resource_version == rv
            with pytest.raises(client.ApiException) as info:
                for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                              resource_version=str(int(rv) - 1), timeout_seconds=2):
                    pass
            assert info.value.status == 410
            # Watching from the current list's resourceVersion works again.
            listed = core.list_namespaced_config_map("default")
            events = list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                               resource_version=listed.metadata.resource_version, timeout_seconds=1))
            assert events == []
    finally:
        stop_sim(second)


# --- kubefoundry CRDs ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def kubefoundry_crds(api, tmp_path_factory):
    """`kubefoundry crds --out DIR`, created through ApiextensionsV1Api and Established."""
    out = tmp_path_factory.mktemp("crds")
    subprocess.run([str(sim_binary()), "crds", "--out", str(out)], check=True, capture_output=True)
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(out.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        try:
            ext.create_custom_resource_definition(crd)
        except client.ApiException as e:
            if e.status != 409:
                raise
        names.append(crd["metadata"]["name"])
    assert "cforgs.kubefoundry.dev" in names and "cfapps.kubefoundry.dev" in names

    def established(name):
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    for name in names:
        wait_for(lambda: established(name), what=f"{name} Established")
    return names


def cforg(name: str, display: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CFOrg", "metadata": {"name": name}, "spec": {"displayName": display}}


def cfapp(name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CFApp", "metadata": {"name": name}, "spec": spec}


def test_crds_are_served(api, kubefoundry_crds):
    # Discovery lists the new group with every kind's plural.
    resources = client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    plurals = {r.name for r in resources.resources}
    assert {"cforgs", "cfapps", "cfspaces"} <= plurals
    assert "cfapps/status" in plurals
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("cfapps.kubefoundry.dev")
    assert crd.spec.names.kind == "CFApp" and crd.status.accepted_names.kind == "CFApp"


def test_cforg_crud_watch_and_schema(api, kubefoundry_crds, namespace):
    custom = client.CustomObjectsApi(api)
    org_guid = str(uuid.uuid4())
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "cforgs")["metadata"]["resourceVersion"]

    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "cforgs", cforg(org_guid, "acme"))
    # Structural-schema defaulting ran on the way in.
    assert created["spec"] == {"displayName": "acme", "suspended": False}
    assert created["metadata"]["generation"] == 1

    got = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "cforgs", org_guid)
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "cforgs")
    assert listed["kind"] == "CFOrgList" and [o["metadata"]["name"] for o in listed["items"]] == [org_guid]

    # CustomObjectsApi patches are JSON merge patches.
    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "cforgs", org_guid,
                                                    {"spec": {"suspended": True}})
    assert patched["spec"]["suspended"] is True and patched["metadata"]["generation"] == 2

    # The status subresource: changes status only, and never bumps generation.
    status = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": "",
                                         "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 2}],
                         "observedGeneration": 2},
              "spec": {"displayName": "ignored"}}
    after = custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "cforgs", org_guid, status)
    assert after["status"]["conditions"][0]["type"] == "Ready"
    assert after["spec"]["displayName"] == "acme" and after["metadata"]["generation"] == 2

    # A main-resource write ignores status.
    replaced = dict(after, spec={"displayName": "acme-renamed"}, status={"observedGeneration": 99})
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, "cforgs", org_guid, replaced)
    assert replaced["spec"]["displayName"] == "acme-renamed" and replaced["status"]["observedGeneration"] == 2

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "cforgs", org_guid)
    err = api_error(custom.get_namespaced_custom_object, GROUP, VERSION, namespace, "cforgs", org_guid)
    assert err.status == 404

    events = [
        (e["type"], e["object"]["metadata"]["name"], e["object"]["spec"]["displayName"])
        for e in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "cforgs",
                                      resource_version=rv, timeout_seconds=1)
    ]
    assert [t for t, _, _ in events] == ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]
    assert events[-1][2] == "acme-renamed"


def test_dynamic_client_on_custom_resources(api, kubefoundry_crds, namespace):
    """kubernetes.dynamic resolves kinds through discovery (/api, /apis, then each group
    version), then server-side applies and reads CFApps."""
    dyn = dynamic.DynamicClient(api)
    apps = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="CFApp")
    assert apps.namespaced and apps.name == "cfapps" and "app" in apps.short_names
    body = cfapp("dyn-app", {"displayName": "dyn", "desiredState": "STARTED"})
    applied = apps.server_side_apply(namespace=namespace, body=body, field_manager="e2e-dynamic")
    assert applied.spec.desiredState == "STARTED" and applied.spec.lifecycle.type == "buildpack"
    assert [m.manager for m in applied.metadata.managedFields] == ["e2e-dynamic"]
    listed = apps.get(namespace=namespace)
    assert [i.metadata.name for i in listed.items] == ["dyn-app"]
    apps.delete(namespace=namespace, name="dyn-app")
    assert apps.get(namespace=namespace).items == []


def test_cfapp_schema_violations_are_422(api, kubefoundry_crds, namespace):
    custom = client.CustomObjectsApi(api)
    app = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "cfapps", cfapp("app-ok", {"displayName": "ok"}))
    assert app["spec"]["desiredState"] == "STOPPED" and app["spec"]["lifecycle"] == {"type": "buildpack"}

    def invalid(body) -> dict:
        err = api_error(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "cfapps", body)
        assert err.status == 422, err.body
        status = status_of(err)
        assert status["kind"] == "Status" and status["reason"] == "Invalid" and status["code"] == 422
        assert status["details"]["group"] == GROUP and status["details"]["kind"] == "CFApp"
        return status

    # A schema error blocks the CEL rules, and apiextensions-apiserver says so in a fieldless
    # cause (recent releases render the nil value as `null`, older ones as `"null"`).
    skipped = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
    status = invalid(cfapp("no-name", {}))
    causes = status["details"]["causes"]
    assert causes[0] == {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.displayName"}
    assert [(c["reason"], c["field"]) for c in causes[1:]] == [("FieldValueInvalid", "<nil>")]
    assert causes[1]["message"].endswith(skipped)
    assert status["message"].startswith('CFApp.kubefoundry.dev "no-name" is invalid: [spec.displayName: Required value, <nil>: Invalid value: ')

    status = invalid(cfapp("bad-state", {"displayName": "x", "desiredState": "RUNNING"}))
    cause = status["details"]["causes"][0]
    assert cause["reason"] == "FieldValueNotSupported" and cause["field"] == "spec.desiredState"
    assert cause["message"] == 'Unsupported value: "RUNNING": supported values: "STARTED", "STOPPED"'

    status = invalid(cfapp("bad-env", {"displayName": "x", "env": {"VCAP_SERVICES": "{}"}}))
    cause = status["details"]["causes"][0]
    assert cause["field"] == "spec.env" and "may not start with VCAP_" in cause["message"]

    # The same rules guard updates: a merge patch that breaks the schema changes nothing.
    err = api_error(custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, "cfapps", "app-ok",
                    {"spec": {"displayName": ""}})
    assert err.status == 422 and status_of(err)["details"]["causes"][0]["field"] == "spec.displayName"
    assert custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "cfapps", "app-ok")["spec"]["displayName"] == "ok"
