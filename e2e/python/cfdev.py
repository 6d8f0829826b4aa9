"""Starting and stopping `kubefoundry dev` (simulated cluster, controller and CF API with its
built-in token issuer in one process) for the cloudfoundry-client suite, and reading the CF API
URL and the admin credentials from the banner it prints."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from support import _die_with_parent, sim_binary

STARTUP_TIMEOUT = 60.0

# The banner `dev` prints once the API listens (src/dev.rs, Dev::banner).
API_LINE = re.compile(r"^\s*CF API:\s+(\S+)\s*$", re.MULTILINE)
ADMIN_LINE = re.compile(r"^\s*Admin:\s+user '([^']+)', password (\S+)\s*$", re.MULTILINE)


@dataclass
class Dev:
    """A running `kubefoundry dev`."""

    url: str
    username: str
    password: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        try:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            tail = "<no log>"
        code = self.process.poll()
        return tail if code is None else f"{tail}\n<dev process exited with code {code}>"


def start_dev(workdir: Path) -> Dev:
    binary = sim_binary()
    if not binary.is_file():
        pytest.exit(f"kubefoundry binary not found at {binary}; run `cargo build -p kubefoundry` "
                    "or set KUBEFOUNDRY_BIN", returncode=2)
    log = workdir / "dev.log"
    # Port 0 for both listeners: dev binds free ports itself and prints the real API URL, so
    # no other process can take a port between picking and binding it.
    argv = [str(binary), "dev", "--data-dir", str(workdir / "data"),
            "--kube-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=workdir, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    banner = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kubefoundry dev exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        text = log.read_text(errors="replace")
        api, admin = API_LINE.search(text), ADMIN_LINE.search(text)
        if api and admin:
            banner = (api.group(1), admin.group(1), admin.group(2))
            if _root_answers(banner[0]):
                return Dev(banner[0], banner[1], banner[2], process, log)
        time.sleep(0.1)
    stop_dev_process(process)
    raise RuntimeError(f"kubefoundry dev was not ready within {STARTUP_TIMEOUT}s (banner: {banner}):\n"
                       f"{log.read_text(errors='replace')}")


def _root_answers(url: str) -> bool:
    try:
        response = requests.get(f"{url}/", timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200 and "links" in response.json()


def stop_dev_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class LogOnFailure:
    """A pytest plugin, registered while a dev runs: a failing test that used it gets the dev
    log tail in its report (the server side of the story)."""

    def __init__(self, dev: Dev, fixture: str):
        self.dev = dev
        self.fixture = fixture

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.failed and self.fixture in getattr(item, "fixturenames", ()):
            report.sections.append(("kubefoundry dev log tail", self.dev.log_tail()))
        return report
