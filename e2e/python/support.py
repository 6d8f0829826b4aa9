"""Starting and stopping `kubefoundry sim` for the e2e suites, plus small polling helpers.

The sim binary comes from `KUBEFOUNDRY_BIN` (default: the workspace's debug build)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_BIN = REPO / "target" / "debug" / "kubefoundry"
STARTUP_TIMEOUT = 20.0


def sim_binary() -> Path:
    return Path(os.environ.get("KUBEFOUNDRY_BIN", str(DEFAULT_BIN)))


@dataclass
class Sim:
    """A running `kubefoundry sim` process."""

    mode: str
    kubeconfig: Path
    url: str
    process: subprocess.Popen
    log: Path
    workdir: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            tail = "<no log>"
        code = self.process.poll()
        # A negative code is the signal that ended it (-9: SIGKILL, -15: SIGTERM).
        return tail if code is None else f"{tail}\n<sim process exited with code {code}>"

    def api_client(self) -> client.ApiClient:
        # A client of its own, not the module-global default, so HTTP and TLS sims (and
        # their CA files) never leak into each other.
        return config.new_client_from_config(config_file=str(self.kubeconfig))


def start_sim(tls: bool, workdir: Path, extra_args: list[str] | None = None, env: dict | None = None) -> Sim:
    binary = sim_binary()
    if not binary.is_file():
        pytest.exit(f"kubefoundry binary not found at {binary}; run `cargo build -p kubefoundry` "
                    "or set KUBEFOUNDRY_BIN", returncode=2)
    kubeconfig = workdir / "kubeconfig"
    log = workdir / "sim.log"
    # Port 0: the sim binds a free port itself and writes the real URL into the kubeconfig,
    # so there is no window in which another process can steal a port picked here.
    argv = [str(binary), "sim", "--listen", "127.0.0.1:0", "--kubeconfig-out", str(kubeconfig)]
    if tls:
        argv.append("--tls")
    argv += extra_args or []
    # A restart in the same workdir appends to the log; only what this run writes counts.
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=workdir, preexec_fn=_die_with_parent,
                                   env=None if env is None else {**os.environ, **env})
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kubefoundry sim exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        # The sim prints this line only after the kubeconfig is completely written.
        if READY_LINE in log.read_bytes()[offset:]:
            doc = yaml.safe_load(kubeconfig.read_text())
            url = doc["clusters"][0]["cluster"]["server"]
            return Sim("tls" if tls else "http", kubeconfig, url, process, log, workdir)
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=5)
    raise RuntimeError(f"kubefoundry sim was not ready within {STARTUP_TIMEOUT}s:\n{log.read_text(errors='replace')}")


READY_LINE = b"kubefoundry sim serving "


def _die_with_parent() -> None:
    """In the child before exec: on Linux, have the kernel SIGTERM the sim if pytest dies
    without running fixture teardown, so no orphaned sim keeps running."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def stop_sim(sim: Sim) -> None:
    if sim.process.poll() is None:
        sim.process.send_signal(signal.SIGTERM)
        try:
            sim.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            sim.process.kill()
            sim.process.wait(timeout=5)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
