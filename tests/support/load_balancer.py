"""HAProxy in front of a test's gateways, run with the repository's own deploy/haproxy.cfg.

The shipped file finds gateways by Docker's DNS; here its ``server-template`` lines become one
``server`` line per local gateway and it listens on a free port of 127.0.0.1. Everything else
(balancing, health checks on /readyz, timeouts, retries, stickiness) is the file as shipped.
HAProxy is installed with apt-get when missing (as root, like the local RabbitMQ), and stopped
by the pid it was started with.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.stack import LocalUrls
from tools.rabbit import apt_install, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "deploy" / "haproxy.cfg"
SERVER_TEMPLATE = "server-template "
SHIPPED_BIND = "bind :8000"


def haproxy_binary() -> str:
    """The ``haproxy`` program, installed with apt-get when missing."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        print("installing haproxy with apt-get …", flush=True)
        if (problem := apt_install("haproxy")) is not None:
            raise RuntimeError(problem)
        found = shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin:/usr/bin")
    assert found is not None, "haproxy is not on PATH after installing it"
    return found


def local_config(shipped: str, port: int, gateway_ports: list[int]) -> str:
    """``shipped`` with its listener on ``127.0.0.1:port`` and the gateways on those ports."""
    assert SHIPPED_BIND in shipped, "the shipped config no longer binds :8000"
    lines: list[str] = []
    for line in shipped.splitlines():
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped.startswith(SERVER_TEMPLATE):
            lines += [
                f"{indent}server gateway-{i} 127.0.0.1:{gateway_port}"
                for i, gateway_port in enumerate(gateway_ports, start=1)
            ]
        elif stripped == SHIPPED_BIND:
            lines.append(f"{indent}bind 127.0.0.1:{port}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass
class LocalLoadBalancer(LocalUrls):
    """HAProxy in ``folder`` (config and log) on ``port``, in front of ``gateway_ports``."""

    folder: Path
    gateway_ports: list[int]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.folder / "haproxy.cfg"

    @property
    def log_path(self) -> Path:
        return self.folder / "haproxy.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout_s: float = 30.0) -> None:
        """Start HAProxy; return once it answers /readyz through a gateway."""
        binary = haproxy_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        config = local_config(SHIPPED_CONFIG.read_text(), self.port, self.gateway_ports)
        self.config_path.write_text(config)
        check = subprocess.run(
            [binary, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True
        )
        assert check.returncode == 0, f"haproxy refused the config:\n{check.stderr}"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of pytest does not reach it first
            )
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            assert self.process.poll() is None, f"haproxy exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"haproxy did not answer:\n{self.log()}"
            time.sleep(0.05)

    def _answers(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            return httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Hard stop (SIGTERM) of the HAProxy this started, by its pid."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
