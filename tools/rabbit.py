"""A private RabbitMQ node for development and tests on machines without a Docker engine.

Uses Debian's ``rabbitmq-server`` package (installed with apt-get when missing and running as
root). Each node gets its own name, ports and folders, so several can run side by side, and
is stopped by the pid it was started with, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
APT_PACKAGE = "rabbitmq-server"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


class RabbitUnavailable(RuntimeError):
    """No way to run a local RabbitMQ here; the message says what to install."""


def is_installed() -> bool:
    return Path(SERVER).exists()


def ensure_installed() -> None:
    """Install Debian's rabbitmq-server when missing (root only)."""
    if is_installed():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RabbitUnavailable(
            "RabbitMQ is not installed. Install it with `sudo apt-get install -y rabbitmq-server`"
            ", or point IM_AMQP_URL at a running broker, or start a Docker engine."
        )
    print("installing rabbitmq-server with apt-get (about 15 s) …", flush=True)
    if (problem := apt_install(APT_PACKAGE)) is not None:
        raise RabbitUnavailable(problem)


def apt_install(package: str) -> str | None:
    """Install a Debian package (as root) without starting its services; None once done,
    else what went wrong. (Also the tests' PostgreSQL, which runs private clusters too.)"""
    install = ("install", "-y", "-q", "--no-install-recommends", package)
    # We only run private nodes, so the package must not start its default node: the
    # Debian way is a policy-rc.d that denies service starts for the length of the install.
    with _services_not_started():
        if _apt_get(*install).returncode != 0:
            _apt_get("update", "-q")
            if (result := _apt_get(*install)).returncode != 0:
                return f"apt-get install {package} failed:\n{result.stderr}"
    return None


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


@contextmanager
def _services_not_started() -> Iterator[None]:
    """While installing: invoke-rc.d refuses to start services (exit 101, see
    /usr/share/doc/init-system-helpers/README.policy-rc.d). An existing policy is left as is."""
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text("#!/bin/sh\n# written by instantmentor's tools/rabbit.py\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC_D.unlink(missing_ok=True)


def free_port(*, avoid: tuple[int | None, ...] = ()) -> int:
    """A port nobody listens on now, other than the ones in ``avoid`` (already promised)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class LocalRabbit:
    """One private node rooted at ``base``. ``start()`` returns when it accepts AMQP."""

    base: Path
    port: int = field(default_factory=free_port)
    management_port: int | None = None
    name: str = ""
    dist_port: int = 0  # Erlang distribution (rabbitmqctl talks to the node through it)
    # Where the Erlang cookie lives (nodes of one cluster share it); as root, rabbitmq's home.
    home: Path | None = None
    _process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.base = self.base.resolve()
        self.name = self.name or f"im{self.port}@localhost"
        # Chosen free, never derived from the AMQP port: port + 10000 is 15672 for the
        # default 5672, the management port, and the node then exits with eaddrinuse.
        self.dist_port = self.dist_port or free_port(avoid=(self.port, self.management_port))

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        plugins = self.base / "enabled_plugins"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "HOME": str(self._home()),
        }
        return env

    def _home(self) -> Path:
        if os.geteuid() == 0:
            return Path("/var/lib/rabbitmq")
        return self.home or self.base / "home"

    def _prepare(self) -> None:
        for sub in ("mnesia", "log", "home"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self._home().mkdir(parents=True, exist_ok=True)
        plugins = ["rabbitmq_management"] if self.management_port else []
        (self.base / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        conf = ["loopback_users = none", "log.console = false"]
        if self.management_port:
            conf.append(f"management.tcp.port = {self.management_port}")
            conf.append("management.tcp.ip = 127.0.0.1")
        (self.base / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=True)
            # the rabbitmq user must be able to reach base through its parents
            for parent in self.base.parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)

    def _command(self, program: str, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "rabbitmq", "--", program, *args]
        return [program, *args]

    def start(self, timeout_s: float = 90.0) -> None:
        self.launch()
        self.wait_open(timeout_s)

    def launch(self) -> None:
        """Start the node's process and return at once (see :meth:`wait_open`)."""
        ensure_installed()
        self._prepare()
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - lives as long as the node
        # as many open files as allowed (RabbitMQ's documentation asks for 65,536 or more):
        # with the usual 1,024 its file handle cache runs out after a few hundred queues, and
        # then every new connection waits for a handle, so the broker accepts sockets and
        # answers none. (runuser's PAM session sets the soft limit again, hence the shell.)
        self._process = subprocess.Popen(
            self._command("sh", "-c", 'ulimit -n "$(ulimit -Hn)" && exec "$0"', SERVER),
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_open(self, timeout_s: float = 90.0) -> None:
        """Until the node accepts AMQP connections (fails if its process exits)."""
        assert self._process is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port):
            if self._process.poll() is not None:
                raise RabbitUnavailable(
                    f"rabbitmq-server exited with {self._process.returncode}; "
                    f"see {self.base / 'server.out'} and {self.base / 'log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RabbitUnavailable(f"rabbitmq-server did not open port {self.port}")
            time.sleep(0.1)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(CTL, "-n", self.name, *args)

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of RabbitMQ's command line tools against this node's environment."""
        return subprocess.run(
            self._command(program, *args),
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the node we started (SIGTERM to its process group, SIGKILL if it lingers)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        self._signal_group(process, signal.SIGCONT)  # a paused node handles no SIGTERM
        self._signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._signal_group(process, signal.SIGKILL)
            process.wait(10)
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the node we started: no goodbye to its peers or clients (a crashed machine)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        self._signal_group(process, signal.SIGKILL)
        process.wait(10)

    def pause(self) -> None:
        """SIGSTOP the node: its sockets stay open and nothing answers on them (a machine that
        hangs, or a network cut without a reset)."""
        if self._process is not None:
            self._signal_group(self._process, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the node after :meth:`pause`."""
        if self._process is not None:
            self._signal_group(self._process, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass

    def restart(self) -> None:
        self.stop()
        self.start()
