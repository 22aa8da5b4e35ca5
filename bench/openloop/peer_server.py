"""The peer: python-socketio's AsyncServer with the RabbitMQ client manager, under uvicorn.

Two of these run side by side; senders connect to one and receivers to the other, so every
relayed message crosses RabbitMQ (AsyncAioPikaManager publishes each emit to a fanout
exchange that every server consumes). Served with the gateway's uvicorn settings (uvloop,
websockets-sansio, no access log, permessage-deflate only with ``--deflate``) so the
servers differ in the application only.

    python -m bench.openloop.peer_server --port 8101 --amqp-url amqp://... --channel c1

With ``--durable`` each server's queue is a durable quorum queue (the manager already sends
persistent messages and waits for each publish's confirm), so an emit is acknowledged only
once RabbitMQ has it on disk: the relay with chat's guarantee for a command, without the
database. Its consumer's prefetch is 100, not the library's 1: a quorum queue settles each
ack through its log, and with one message in flight the relay tops out below 1,000/s
(p50 443 ms there, in the ninth session's run).

Events (client → server), each acknowledged once the emit is published:

* ``relay`` ``{to, payload}``: ``emit("msg", payload, room=to)``; every client sits in the
  room named by its user id (the ``user`` of its connect ``auth``).
* ``status`` ``{...}``: ``emit("status", data, room="students")`` — the clients that
  connected with ``auth.student`` true.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn

STUDENTS = "students"
DURABLE_PREFETCH = 100


class DurableAioPikaManager(socketio.AsyncAioPikaManager):  # type: ignore[misc]
    """AsyncAioPikaManager whose server queue is a durable quorum queue named ``queue``
    (removed by RabbitMQ 5 minutes after its server is gone, as the library's own is),
    consumed with a prefetch of ``DURABLE_PREFETCH``."""

    def __init__(self, url: str, channel: str, queue: str) -> None:
        super().__init__(url, channel=channel)
        self.queue_name = queue

    async def _queue(self, channel: Any, exchange: Any) -> Any:
        # the library's _listen sets a prefetch of 1 just before it calls this, and consumes
        # right after: the last word is this one
        await channel.set_qos(prefetch_count=DURABLE_PREFETCH)
        arguments = {"x-queue-type": "quorum", "x-expires": 300_000}
        queue = await channel.declare_queue(self.queue_name, durable=True, arguments=arguments)
        await queue.bind(exchange)
        return queue


def create_app(amqp_url: str, channel: str, durable_queue: str | None = None) -> Any:
    manager = (
        DurableAioPikaManager(amqp_url, channel, durable_queue)
        if durable_queue
        else socketio.AsyncAioPikaManager(amqp_url, channel=channel)
    )
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=manager, logger=False, engineio_logger=False
    )

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> bool:
        if not auth or not auth.get("user"):
            return False
        await sio.enter_room(sid, str(auth["user"]))
        if auth.get("student"):
            await sio.enter_room(sid, STUDENTS)
        return True

    @sio.on("relay")  # type: ignore[untyped-decorator]
    async def relay(sid: str, data: dict[str, Any]) -> bool:
        await sio.emit("msg", data["payload"], room=str(data["to"]))
        return True

    @sio.on("status")  # type: ignore[untyped-decorator]
    async def status(sid: str, data: dict[str, Any]) -> bool:
        await sio.emit("status", data, room=STUDENTS)
        return True

    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--channel", required=True, help="the exchange the servers share")
    parser.add_argument("--deflate", action="store_true", help="permessage-deflate")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="this server's queue durable (quorum), named <channel>.<port>",
    )
    args = parser.parse_args()
    durable_queue = f"{args.channel}.{args.port}" if args.durable else None
    uvicorn.run(
        create_app(args.amqp_url, args.channel, durable_queue),
        host=args.host,
        port=args.port,
        loop="uvloop",
        ws="websockets-sansio",
        ws_per_message_deflate=args.deflate,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
