"""Fixtures shared by the Helm and Python-client suites: one `kubefoundry sim` per transport
(plain HTTP and `--tls`) for the whole session, a Python kubernetes client bound to it, and a
fresh namespace per test."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from support import start_sim, stop_sim


@pytest.fixture(scope="session", params=["http", "tls"])
def sim(request, tmp_path_factory):
    """One sim per transport; tests isolate themselves by namespace."""
    workdir = tmp_path_factory.mktemp(f"sim-{request.param}")
    running = start_sim(tls=request.param == "tls", workdir=workdir)
    yield running
    stop_sim(running)


@pytest.fixture(scope="session")
def api(sim):
    api_client = sim.api_client()
    yield api_client
    api_client.close()


@pytest.fixture
def namespace(api):
    """A fresh namespace per test, deleted afterwards (best effort)."""
    core = client.CoreV1Api(api)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException:
        pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # A failing test gets the sim's log tail in its report: the server side of the story.
    report = yield
    sim = item.funcargs.get("sim") if hasattr(item, "funcargs") else None
    if report.failed and sim is not None:
        report.sections.append((f"kubefoundry sim ({sim.mode}) log tail", sim.log_tail()))
    return report
