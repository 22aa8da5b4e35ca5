"""``make up``: the whole stack in the foreground, with a broker if none answers.

Broker: the one at IM_AMQP_URL if it answers; else a container where a Docker engine runs;
else a private ``rabbitmq-server`` node under IM_DATA_DIR (installed with apt-get when missing
and running as root). Then the gateway and every service that exists, each logging to
``IM_DATA_DIR/logs/<name>.log`` so the screen shows one line per step. Ctrl-C or SIGTERM
stops everything. Every IM_ variable of this environment reaches every process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

from shared.protocol.registry import SERVICES
from shared.settings import get_settings
from tools.rabbit import LocalRabbit, RabbitUnavailable, free_port, port_open

REPO = Path(__file__).resolve().parents[1]
RABBIT_IMAGE = "rabbitmq:3.13-management"


def _docker_engine() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Stack:
    def __init__(self) -> None:
        self.settings = get_settings()
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.rabbit: LocalRabbit | None = None
        self.container: str | None = None
        self.amqp_url = self.settings.amqp_url

    def provide_broker(self) -> None:
        url = urlparse(self.amqp_url)
        host, port = url.hostname or "localhost", url.port or 5672
        if port_open(port, host):
            step(f"broker: using the one at {host}:{port}")
            return
        if _docker_engine():
            name = f"instantmentor-rabbit-{os.getpid()}"
            subprocess.run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--rm",
                    "--name",
                    name,
                    "-p",
                    f"{port}:5672",
                    "-p",
                    "15672:15672",
                    RABBIT_IMAGE,
                ],
                check=True,
            )
            self.container = name
            self._wait_port(port, host)
            step(f"broker: started container {name} (management UI http://localhost:15672)")
            return
        data = self.settings.data_dir.resolve() / "rabbitmq"
        node_port = port if host in ("localhost", "127.0.0.1") else free_port()
        # RabbitMQ's habit: management on AMQP port + 10000 (15672 for 5672) when free
        management = node_port + 10_000
        if management > 65_535 or port_open(management):
            management = free_port(avoid=(node_port,))
        self.rabbit = LocalRabbit(
            data, port=node_port, management_port=management, name="instantmentor@localhost"
        )
        step(f"broker: starting a local RabbitMQ node in {data} (about 10 s)")
        self.rabbit.start()
        self.amqp_url = self.rabbit.url
        ui = f"http://127.0.0.1:{management}"
        step(f"broker: RabbitMQ on 127.0.0.1:{self.rabbit.port}, management UI {ui}")

    @staticmethod
    def _wait_port(port: int, host: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while not port_open(port, host):
            if time.monotonic() > deadline:
                raise RabbitUnavailable(f"broker did not open {host}:{port}")
            time.sleep(0.2)

    def env(self) -> dict[str, str]:
        return {**os.environ, "IM_AMQP_URL": self.amqp_url, "PYTHONUNBUFFERED": "1"}

    @property
    def logs(self) -> Path:
        return self.settings.data_dir.resolve() / "logs"

    def start(self, name: str, module: str, **extra_env: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=REPO,
                env={**self.env(), **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.processes.append((name, process))

    def start_all(self) -> None:
        names = [s for s in SERVICES if (REPO / "services" / s / "service.py").exists()]
        step(f"starting {', '.join(names)} and the gateway (logs in {self.logs}/)")
        for service in names:
            self.start(service, f"services.{service}")
        gateways = self.settings.gateway_processes
        if gateways == 1:
            self.start("gateway", "services.gateway")
            return
        step(f"{gateways} gateway processes share port {self.settings.gateway_port}")
        for number in range(1, gateways + 1):
            self.start(f"gateway-{number}", "services.gateway", IM_GATEWAY_REUSE_PORT="true")

    def wait_ready(self, timeout_s: float = 120) -> None:
        base = f"http://127.0.0.1:{self.settings.gateway_port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the gateway did not become ready")
        port = self.settings.gateway_port
        if self.settings.dev_mode:
            step(
                f"dev mode: /dev/token mints tokens for anyone who can reach "
                f"{self.settings.gateway_host}:{port} (IM_DEV_MODE=false turns it off)"
            )
        print(
            "\nInstantMentor Realtime is up.\n"
            f"  WebSocket:  ws://localhost:{port}/ws?token=<JWT>\n"
            f"  Socket.IO:  http://localhost:{port}/socket.io/  (auth: {{token: <JWT>}})\n"
            f"  Demo page:  http://localhost:{port}/demo/\n"
            f"  HTTP:       http://localhost:{port}/healthz  /readyz  /metrics  /api/mentors\n"
            "  A token:    make token USER=alice ROLE=student NAME=Alice\n"
            "  Stop:       Ctrl-C\n",
            flush=True,
        )

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                print("\n".join(tail), file=sys.stderr)
                raise SystemExit(f"{name} exited with {process.returncode} (its log: above)")

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.rabbit is not None:
            self.rabbit.stop()
        if self.container is not None:
            subprocess.run(["docker", "stop", self.container], capture_output=True, check=False)
        print("stopped", flush=True)


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def main() -> None:
    os.environ.setdefault("IM_DEV_MODE", "true")  # local stack: the demo page mints dev tokens
    os.environ.setdefault("IM_LOG_JSON", "false")  # read by people here, not by a log pipeline
    stack = Stack()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.provide_broker()
        stack.start_all()
        stack.wait_ready()
        while not stopping:
            stack.check_alive()
            time.sleep(0.5)
    except RabbitUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
