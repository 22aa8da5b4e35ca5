"""The npm ``socket.io-client`` as a test client: one Node process per socket
(``tests/socketio_client/driver.mjs``), commands in and reports out as JSON lines."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

from tests.support.client import bearer, check_frame, merge_mentor_views
from tests.support.receiving import Receiving

CLIENT_DIR = Path(__file__).resolve().parents[1] / "socketio_client"
DRIVER = CLIENT_DIR / "driver.mjs"
Report = dict[str, Any]


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the Socket.IO tests"
    assert (CLIENT_DIR / "node_modules" / "socket.io-client").is_dir(), (
        "socket.io-client is not installed: `make test` installs it "
        "(or `npm ci` in tests/socketio_client)"
    )
    return node


class SioClient(Receiving[Report]):
    """One socket.io-client socket. :attr:`reports` holds everything it saw, in order."""

    item_name = "report"

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__()
        self.process = process
        self._seqs = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @property
    def reports(self) -> list[Report]:
        return self.received

    @classmethod
    async def start(
        cls,
        base_url: str,
        token: str | None = None,
        *,
        via: str = "auth",
        transports: list[str] | None = None,
        **options: Any,
    ) -> SioClient:
        """``io(base_url, options)`` with ``token`` passed ``via`` the connect ``auth``
        payload, the ``query`` or the ``header``; returns at once (see :meth:`connected`)."""
        process = await asyncio.create_subprocess_exec(
            _node(),
            str(DRIVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=CLIENT_DIR,
        )
        client = cls(process)
        if token is not None:
            if via == "auth":
                options["auth"] = {"token": token}
            elif via == "query":
                options["query"] = {"token": token}
            else:
                options["extraHeaders"] = bearer(token)
        if transports is not None:
            options["transports"] = transports
        await client._command({"op": "connect", "url": base_url, "options": options})
        return client

    async def _command(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            async for line in self.process.stdout:
                report: Report = json.loads(line)
                if report["type"] == "event" and len(report["args"]) == 1:
                    check_frame({"event": report["name"], "data": report["args"][0]})
                await self._receive(report)
        finally:
            await self._end()

    def _why_ended(self) -> str:
        return "the Node client exited"

    def _recent(self) -> str:
        return f"last reports: {[(r['type'], r.get('name')) for r in self.reports[-20:]]}"

    # -- waiting ---------------------------------------------------------------------------

    async def report(self, kind: str, timeout: float = 10.0, after: int = 0) -> Report:
        """The first report of type ``kind`` (``connect``, ``disconnect``, ...) from index
        ``after`` of :attr:`reports` on."""
        return await self.wait_for(
            lambda r: r["type"] == kind and self._index(r) >= after, timeout, kind
        )

    def _index(self, report: Report) -> int:
        return next(i for i, r in enumerate(self.reports) if r is report)

    async def event(
        self, name: str, timeout: float = 10.0, after: int = 0, **match: Any
    ) -> dict[str, Any]:
        """The data of the first ``name`` event whose data has all of ``match``."""

        def matches(r: Report) -> bool:
            if r["type"] != "event" or r["name"] != name or len(r["args"]) != 1:
                return False
            data = r["args"][0]
            return all(data.get(k) == v for k, v in match.items()) and self._index(r) >= after

        report = await self.wait_for(matches, timeout, f"{name} {match or ''}")
        return dict(report["args"][0])

    def mentors_seen(self) -> dict[str, dict[str, Any]]:
        """Mentor statuses as the client knows them (see :func:`merge_mentor_views`)."""
        events = (r for r in self.reports if r["type"] == "event")
        return merge_mentor_views((r["name"], r["args"][0] if r["args"] else None) for r in events)

    async def connected(self, timeout: float = 10.0) -> dict[str, Any]:
        """The ``connected`` push (PROTOCOL §1), once the socket is connected."""
        await self.report("connect", timeout)
        return await self.event("connected", timeout)

    def count(self, name: str, **match: Any) -> int:
        return sum(
            1
            for r in self.reports
            if r["type"] == "event"
            and r["name"] == name
            and all(r["args"][0].get(k) == v for k, v in match.items())
        )

    # -- requests --------------------------------------------------------------------------

    async def emit(self, event: str, *args: Any, ack: bool = True) -> int:
        """Emit ``event`` with ``args``; returns the sequence number its ack will carry."""
        seq = next(self._seqs)
        await self._command(
            {"op": "emit", "seq": seq, "event": event, "args": list(args), "ack": ack}
        )
        return seq

    async def request(self, event: str, *args: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Emit with an acknowledgement callback; return what the server acknowledged."""
        seq = await self.emit(event, *args)
        report = await self.wait_for(
            lambda r: r["type"] == "ack" and r["seq"] == seq, timeout, f"ack of {event}"
        )
        assert len(report["args"]) == 1, report
        return dict(report["args"][0])

    async def ack(self, event: str, *args: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Like :meth:`request`, but it must be ``{"ok": true}``; returns its ``data``."""
        reply = await self.request(event, *args, timeout=timeout)
        assert reply["ok"] is True and set(reply) == {"ok", "data"}, f"{event} failed: {reply}"
        return dict(reply["data"])

    async def error(self, event: str, *args: Any, timeout: float = 10.0) -> str:
        """Like :meth:`request`, but it must be ``{"ok": false}``; returns the error code."""
        reply = await self.request(event, *args, timeout=timeout)
        assert reply["ok"] is False, f"{event} should have failed: {reply}"
        assert {"code", "message"} <= set(reply["error"]), reply
        return str(reply["error"]["code"])

    # -- the socket ------------------------------------------------------------------------

    async def disconnect(self) -> None:
        await self._command({"op": "disconnect"})

    async def connect_again(self, token: str | None = None) -> None:
        command: dict[str, Any] = {"op": "connect_again"}
        if token is not None:
            command["auth"] = {"token": token}
        await self._command(command)

    async def close(self) -> None:
        """Disconnect and let the Node process exit."""
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await asyncio.gather(self._reader, return_exceptions=True)
