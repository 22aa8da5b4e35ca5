"""Two gateways behind a real HAProxy running deploy/haproxy.cfg: users on different gateways
chat, call and get help through it; then one gateway is SIGKILLed and its clients (the SDK)
come back through the load balancer on the other, every message delivered exactly once."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import instantmentor_client as sdk
import pytest

from tests.support.client import bearer
from tests.support.load_balancer import SHIPPED_CONFIG, LocalLoadBalancer, haproxy_binary
from tests.support.stack import Gateway, Stack, poll

EVENTUALLY_S = 15.0
SERVICES = ("presence", "chat", "calls", "help")


@dataclass
class Balanced:
    load_balancer: LocalLoadBalancer
    gateways: list[Gateway]

    def client(self, stack: Stack, user_id: str, role: str, name: str) -> sdk.InstantMentorClient:
        """An SDK client of ``user_id`` that connects through the load balancer."""
        return sdk.InstantMentorClient(
            self.load_balancer.ws,
            token=stack.token(user_id, role, name),
            backoff_base=0.05,
            backoff_cap=0.4,
        )

    async def connect(self, client: sdk.InstantMentorClient) -> Gateway:
        """Connect ``client`` through the load balancer; the gateway it landed on."""
        alive = [g for g in self.gateways if g.process.alive()]
        before = [open_connections(g) for g in alive]
        await client.connect()
        grown: list[Gateway] = []

        def one_more_somewhere() -> bool:
            now = [open_connections(g) for g in alive]
            grown[:] = [g for g, b, n in zip(alive, before, now, strict=True) if n > b]
            return sum(now) == sum(before) + 1

        await poll(one_more_somewhere, EVENTUALLY_S, "the connection to show on a gateway")
        (gateway,) = grown
        return gateway

    async def alice_and_maya(
        self, stack: Stack
    ) -> tuple[sdk.InstantMentorClient, Gateway, sdk.InstantMentorClient, Gateway]:
        """Student alice and mentor maya connected through the load balancer, each with the
        gateway it landed on: different ones."""
        alice = self.client(stack, "alice", "student", "Alice")
        maya = self.client(stack, "maya", "mentor", "Maya")
        alices_gateway, mayas_gateway = await self.connect(alice), await self.connect(maya)
        assert alices_gateway is not mayas_gateway, "leastconn puts the second user on the other"
        return alice, alices_gateway, maya, mayas_gateway


def open_connections(gateway: Gateway) -> int:
    """Connections the gateway holds, from its own /metrics (not through the load balancer)."""
    text = httpx.get(f"{gateway.http}/metrics", timeout=2).text
    for line in text.splitlines():
        if line.startswith("im_gateway_connections "):
            return int(float(line.split()[1]))
    raise AssertionError("no im_gateway_connections on /metrics")


@pytest.fixture
def balanced(stack: Stack, tmp_path: Path) -> Iterator[Balanced]:
    for service in SERVICES:
        stack.start_service(service)
    gateways = [stack.start_gateway(), stack.start_gateway()]
    load_balancer = LocalLoadBalancer(tmp_path / "haproxy", [g.port for g in gateways])
    load_balancer.start()
    try:
        yield Balanced(load_balancer, gateways)
    finally:
        load_balancer.stop()


def test_the_shipped_config_is_valid_as_it_is() -> None:
    # as compose mounts it: gateways by Docker's DNS, resolved once HAProxy runs
    check = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(SHIPPED_CONFIG)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration file is valid" in check.stdout


async def test_users_on_different_gateways_chat_call_and_get_help_through_it(
    stack: Stack, balanced: Balanced
) -> None:
    alice, alices_gateway, maya, mayas_gateway = await balanced.alice_and_maya(stack)
    try:
        await maya.update_mentor_status("available", "Ask me")

        # chat, both ways
        to_maya = maya.events("message_received")
        sent = await alice.send_message("Hi Maya", recipient_id="maya")
        got = await to_maya.next(timeout=EVENTUALLY_S)
        assert (got.data["message_id"], got.data["sender_id"]) == (sent.message_id, "alice")
        to_alice = alice.events("message_received")
        reply = await maya.send_message("Hi Alice", conversation_id=sent.conversation_id)
        got = await to_alice.next(timeout=EVENTUALLY_S)
        assert (got.data["message_id"], got.data["seq"]) == (reply.message_id, 2)

        # a call: rings on maya's gateway, accepted and ended on both
        rings = maya.events("call_initiated", "call_ended")
        answers = alice.events("call_accepted")
        call = await alice.initiate_call("maya", "audio")
        assert call.state == "ringing"
        ring = await rings.next(timeout=EVENTUALLY_S)
        assert (ring.name, ring.data["call_id"]) == ("call_initiated", call.call_id)
        assert (await maya.accept_call(call.call_id)).state == "accepted"
        accepted = await answers.next(timeout=EVENTUALLY_S)
        assert accepted.data["accepted_by"] == "maya"
        assert (await alice.end_call(call.call_id)).state == "ended"
        ended = await rings.next(timeout=EVENTUALLY_S)
        assert (ended.name, ended.data["reason"]) == ("call_ended", "hangup")

        # help: asked on one gateway, offered and taken on the other
        offers = maya.events("help_request_received")
        taken = alice.events("help_request_accepted")
        created = await alice.request_help("Calculus", "Stuck on integrals", mentor_id="maya")
        offer = await offers.wait_for(
            "help_request_received",
            lambda e: e.data["request_id"] == created.request_id,
            timeout=EVENTUALLY_S,
        )
        assert offer.data["student_id"] == "alice"
        assert (await maya.accept_help_request(created.request_id)).status == "accepted"
        accepted_help = await taken.next(timeout=EVENTUALLY_S)
        assert accepted_help.data["mentor_id"] == "maya"

        # the HTTP API answers through the load balancer too
        mentors = httpx.get(
            f"{balanced.load_balancer.http}/api/mentors",
            headers=bearer(stack.token("alice")),
            timeout=5,
        )
        assert mentors.status_code == 200 and "maya" in mentors.text
    finally:
        await alice.close()
        await maya.close()


async def test_socketio_long_polling_sessions_stay_on_their_gateway(
    stack: Stack, balanced: Balanced
) -> None:
    # Engine.IO's long-polling is one request after another for one session: any request that
    # reached the other gateway would be refused there (unknown sid)
    url = f"{balanced.load_balancer.http}/socket.io/"
    for n in range(6):
        async with httpx.AsyncClient(timeout=10) as http:  # a cookie jar of its own
            params = {"EIO": "4", "transport": "polling"}
            opened = await http.get(url, params=params)
            assert opened.status_code == 200, opened.text
            assert "im_gateway" in http.cookies, "the load balancer pins the session"
            params["sid"] = json.loads(opened.text[1:])["sid"]
            auth = json.dumps({"token": stack.token(f"poller{n}", "student", f"Poller {n}")})
            posted = await http.post(url, params=params, content=f"40{auth}")
            assert posted.status_code == 200, posted.text
            packets: list[str] = []
            while not any(p.startswith('42["connected"') for p in packets):
                polled = await http.get(url, params=params)
                assert polled.status_code == 200, polled.text
                packets += polled.text.split("\x1e")
                assert len(packets) < 10, packets
            assert packets[0].startswith("40{"), packets


@dataclass
class Sender:
    """One user sending numbered messages to a peer, each resent until acknowledged."""

    client: sdk.InstantMentorClient
    peer: str
    acked: dict[str, str] = field(default_factory=dict)  # client_msg_id → message_id
    resends: int = 0
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def send(self) -> None:
        client_msg_id = f"{self.peer}-{next(self.numbers)}"
        while True:
            try:
                ack = await self.client.send_message(
                    client_msg_id, recipient_id=self.peer, client_msg_id=client_msg_id, timeout=20
                )
            except (sdk.Unavailable, sdk.RequestTimeout):
                # outcome unknown (or never sent): the same client_msg_id is safe to resend
                self.resends += 1
                continue
            assert ack.client_msg_id == client_msg_id
            self.acked[client_msg_id] = ack.message_id
            return

    async def keep_sending(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.send()
            await asyncio.sleep(0.1)  # pacing of the user (10 msg/s), not a wait


def receiver(client: sdk.InstantMentorClient, sender_id: str) -> list[str]:
    """The ids of the messages from ``sender_id`` as ``client`` hands them to the app."""
    received: list[str] = []

    def keep(event: sdk.Event) -> None:
        if event.data["sender_id"] == sender_id:
            received.append(event.data["message_id"])

    client.on("message_received", keep)
    return received


def all_of(expected: set[str], received: list[str]) -> Callable[[], bool]:
    return lambda: set(received) >= expected


async def whole_history(
    client: sdk.InstantMentorClient, conversation_id: str
) -> list[sdk.ChatMessage]:
    messages: list[sdk.ChatMessage] = []
    before: int | None = None
    while True:
        page = await client.get_history(conversation_id, before_seq=before, limit=100)
        messages = page.messages + messages
        if not page.has_more or not page.messages:
            return messages
        before = page.messages[0].seq


async def test_a_killed_gateways_clients_come_back_through_it_and_lose_nothing(
    stack: Stack, balanced: Balanced
) -> None:
    alice, survivor, maya, doomed = await balanced.alice_and_maya(stack)
    to_maya, to_alice = receiver(maya, "alice"), receiver(alice, "maya")
    from_alice, from_maya = Sender(alice, "maya"), Sender(maya, "alice")
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as senders:
            senders.create_task(from_alice.keep_sending(stop))
            senders.create_task(from_maya.keep_sending(stop))
            await poll(
                lambda: len(to_maya) >= 5 and len(to_alice) >= 5,
                EVENTUALLY_S,
                "five messages each way",
            )
            doomed.process.kill()
            # right after the kill, a burst each way: maya's go out on a dead socket or wait
            # for her next connection; alice's find maya on no gateway
            await asyncio.gather(*(s.send() for s in (from_alice, from_maya) for _ in range(5)))
            session = await maya.wait_connected(timeout=30)
            assert maya.stats.connections == 2 and session.connection_id
            assert open_connections(survivor) == 2, "maya came back through it, on the survivor"
            acked_after = len(from_maya.acked), len(from_alice.acked)
            await poll(
                lambda: (
                    len(from_maya.acked) >= acked_after[0] + 10
                    and len(from_alice.acked) >= acked_after[1] + 10
                ),
                EVENTUALLY_S,
                "ten more messages each way",
            )
            stop.set()
    finally:
        stop.set()

    # every acknowledged message reached its recipient exactly once
    for sender, received in ((from_alice, to_maya), (from_maya, to_alice)):
        expected = set(sender.acked.values())
        await poll(all_of(expected, received), EVENTUALLY_S, "every message delivered")
        assert sorted(received) == sorted(expected), "nothing more, nothing twice"

    # and is stored once, gap-free, whoever resent it how often
    (conversation,) = maya.watermarks
    fresh = balanced.client(stack, "maya", "mentor", "Maya")
    assert await balanced.connect(fresh) is survivor  # new sockets avoid the dead gateway
    try:
        history = await whole_history(fresh, conversation)
    finally:
        await fresh.close()
    sent = {**from_alice.acked, **from_maya.acked}
    assert [m.seq for m in history] == list(range(1, len(sent) + 1))
    assert {m.client_msg_id: m.message_id for m in history} == sent
    await poll(
        lambda: maya.watermarks == {conversation: len(sent)}, EVENTUALLY_S, "maya's watermark"
    )
    await alice.close()
    await maya.close()
