"""A gateway's batch of commands in one message (no broker): each command is handled as if it
had come alone, the message is acked once, and a command that fails goes back alone (or to
the dead letters), so its neighbours are never run twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from shared.amqp import headers as h
from shared.errors import Conflict, Unavailable
from shared.runtime.outbox import Request
from tests.support.runtime import DELIVERY_LIMIT as LIMIT
from tests.support.runtime import FakeBroker, FakeDelivery, Note, batch, command, process, runner
from tests.support.stack import poll


def a_batch(*ids: str, headers: dict[str, Any] | None = None) -> FakeDelivery:
    """A batch message: no id of its own (each command has one)."""
    body = batch(*ids)
    return FakeDelivery(body, headers, h.BATCH, correlation_id=None, message_id=None)


async def answers(req: Request) -> None:
    req.out.reply = {"id": req.command_id}


async def test_every_command_is_answered_by_its_own_id_and_the_batch_acked_once() -> None:
    broker = FakeBroker()
    delivery = await process(runner(answers, broker), a_batch("a", "b", "c"))
    replies = [(p.kwargs["correlation_id"], p.body["data"]) for p in broker.published]
    assert replies == [("a", {"id": "a"}), ("b", {"id": "b"}), ("c", {"id": "c"})]
    assert delivery.settled == ["ack"]


async def test_a_refusal_answers_its_own_command_only() -> None:
    async def refuses_b(req: Request) -> None:
        if req.command_id == "b":
            raise Conflict("no")
        req.out.reply = {}

    broker = FakeBroker()
    delivery = await process(runner(refuses_b, broker), a_batch("a", "b"))
    oks = {p.kwargs["correlation_id"]: p.body["ok"] for p in broker.published}
    assert oks == {"a": True, "b": False}
    assert delivery.settled == ["ack"]


async def test_a_crashing_command_goes_back_alone_and_its_neighbours_are_done() -> None:
    runs: list[str | None] = []

    async def b_crashes(req: Request) -> None:
        runs.append(req.command_id)
        if req.command_id == "b":
            raise RuntimeError("a bug")
        req.out.reply = {}

    broker = FakeBroker()
    delivery = await process(runner(b_crashes, broker), a_batch("a", "b", "c"))
    assert runs == ["a", "b", "c"]
    [again] = [p for p in broker.published if p.routing_key == "svc.work"]
    assert again.exchange == "t.commands"
    assert again.body == {"event": "work", "data": {}, "user": None, "origin": None}
    assert (again.kwargs["correlation_id"], again.kwargs["message_id"]) == ("b", "b")
    assert again.kwargs["reply_to"] == "gw.q"
    assert again.kwargs["headers"][h.ATTEMPTS] == 1
    assert [r["ok"] for r in broker.replies()] == [True, True], "b is not answered yet"
    assert delivery.settled == ["ack"]

    # b, alone now: it knows it was tried before, and runs once more
    seen: list[bool] = []

    async def notes(req: Request) -> None:
        seen.append(req.redelivered)

    retried = FakeDelivery(command(), headers=again.kwargs["headers"], correlation_id="b")
    assert (await process(runner(notes, FakeBroker()), retried)).settled == ["ack"]
    assert seen == [True]


async def test_a_command_failing_its_last_attempt_is_dead_lettered_and_its_sender_told() -> None:
    async def crashes(req: Request) -> None:
        raise RuntimeError("a bug")

    broker = FakeBroker()
    last = a_batch("a", headers={"x-delivery-count": LIMIT - 1})
    delivery = await process(runner(crashes, broker), last)
    [reply] = broker.replies()
    assert (reply["ok"], reply["code"]) == (False, "internal")
    [dead] = [p for p in broker.published if p.exchange == "t.dead"]
    assert (dead.routing_key, dead.kwargs["correlation_id"]) == ("svc", "a")
    assert delivery.settled == ["ack"]


async def test_tries_counted_on_a_command_sent_back_alone_reach_the_limit() -> None:
    async def crashes(req: Request) -> None:
        raise RuntimeError("a bug")

    last = FakeDelivery(command(), headers={h.ATTEMPTS: LIMIT - 1})
    assert (await process(runner(crashes, FakeBroker()), last)).settled == ["reject(requeue=False)"]


async def test_when_the_broker_is_away_the_whole_batch_is_retried() -> None:
    broker = FakeBroker(failing=True)
    delivery = await process(runner(answers, broker), a_batch("a", "b"))
    assert delivery.settled == ["nack(requeue=True)"]


async def test_commands_past_their_deadline_are_dropped_and_counted() -> None:
    ran: list[str | None] = []

    async def records(req: Request) -> None:
        ran.append(req.command_id)

    items = [
        {"event": "work", "id": "a", "deadline": h.epoch_ms() - 1},
        {"event": "work", "id": "b", "deadline": h.epoch_ms() + 60_000},
    ]
    late = FakeDelivery(json.dumps(items).encode(), type=h.BATCH)
    service = runner(records, FakeBroker())
    delivery = await process(service, late)
    assert ran == ["b"] and service.expired.total == 1
    assert delivery.settled == ["ack"]


async def test_an_undecodable_batch_is_dead_lettered() -> None:
    broker = FakeBroker()
    delivery = FakeDelivery(b'[{"event": "work"}]', type=h.BATCH)  # no id
    await process(runner(answers, broker), delivery)
    assert broker.published == [] and delivery.settled == ["reject(requeue=False)"]


@pytest.mark.parametrize(
    ("workers", "expected"), [(1, ["a+", "a-", "b+", "b-"]), (8, ["a+", "b+", "a-", "b-"])]
)
async def test_commands_start_in_order_and_overlap_only_where_the_service_allows(
    workers: int, expected: list[str]
) -> None:
    steps: list[str] = []

    async def steps_through(req: Request) -> None:
        steps.append(f"{req.command_id}+")
        await asyncio.sleep(0)  # a handler's first await: where another may start
        steps.append(f"{req.command_id}-")

    await process(runner(steps_through, FakeBroker(), workers=workers), a_batch("a", "b"))
    assert steps == expected


async def test_a_failing_transient_command_is_not_sent_back() -> None:
    async def crashes(req: Request) -> None:
        raise RuntimeError("a bug")

    broker = FakeBroker()
    delivery = await process(runner(crashes, broker), a_batch("a", "b"), transient=True)
    assert [r["code"] for r in broker.replies()] == ["internal", "internal"]
    assert [p for p in broker.published if p.kwargs.get("message_type") != h.REPLY] == []
    assert delivery.settled == ["ack"]


async def pushes_and_answers(req: Request) -> None:
    await asyncio.sleep(0)  # like a commit: the batch's other commands start meanwhile
    req.out.push_user(f"u-{req.command_id}", Note(id=req.command_id))
    req.out.reply = {"id": req.command_id}


@pytest.mark.parametrize(("workers", "transient"), [(8, False), (1, True)])
async def test_pushes_and_replies_of_a_batch_go_as_one_bundle_in_order(
    workers: int, transient: bool
) -> None:
    broker = FakeBroker()
    service = runner(pushes_and_answers, broker, workers=workers)
    delivery = await process(service, a_batch("a", "b"), transient)
    [bundle] = broker.published
    assert (bundle.exchange, bundle.kwargs["message_type"]) == ("t.push", h.BUNDLE)
    assert bundle.routing_key == "user.u-a"
    assert bundle.kwargs["headers"]["CC"] == ["to.gw.q", "user.u-b"]
    assert bundle.kwargs["confirm"] is not transient
    assert [(e["to"], json.loads(e["frame"])["data"], e["reply"][0]) for e in bundle.body] == [
        (["u-a"], {"id": "a", "seq": None}, "a"),
        (["u-b"], {"id": "b", "seq": None}, "b"),
    ]
    assert bundle.body[0]["reply"][1] == {"ok": True, "data": {"id": "a"}}
    assert delivery.settled == ["ack"]


async def test_an_outcome_that_cannot_be_bundled_goes_alone_between_the_bundles() -> None:
    async def b_emits_a_fact(req: Request) -> None:
        if req.command_id == "b":
            req.out.emit("svc.noted", {})
        await pushes_and_answers(req)

    broker = FakeBroker()
    await process(runner(b_emits_a_fact, broker, workers=8), a_batch("a", "b", "c"))
    first, *alone, last = broker.published
    assert first.kwargs["message_type"] == last.kwargs["message_type"] == h.BUNDLE
    assert sorted(p.kwargs.get("message_type") or p.routing_key for p in alone) == sorted(
        [h.PUSH, "svc.noted", h.REPLY]
    ), "b's push, fact and reply, as if b had come alone"
    assert [e["reply"][0] for e in broker.published[0].body] == ["a"]
    assert [e["reply"][0] for e in broker.published[-1].body] == ["c"]


async def test_a_bundle_the_broker_refuses_sends_its_commands_back_alone() -> None:
    class RefusesBundles(FakeBroker):
        async def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> bool:
            if kw.get("message_type") == h.BUNDLE:
                raise Unavailable("no confirm")
            return await super().publish(exchange, routing_key, body, **kw)

    broker = RefusesBundles()
    delivery = await process(runner(pushes_and_answers, broker, workers=8), a_batch("a", "b"))
    assert [(p.routing_key, p.kwargs["correlation_id"]) for p in broker.published] == [
        ("svc.work", "a"),
        ("svc.work", "b"),
    ]
    assert delivery.settled == ["ack"]


async def test_handlers_start_in_delivery_order_across_batches_and_single_commands() -> None:
    """Two workers: one takes a batch, the next a single command delivered after it. The
    single command's handler must not start before the batch's (chat numbers a sender's
    messages in the order their handlers start)."""
    started: list[str | None] = []

    async def notes_start(req: Request) -> None:
        started.append(req.command_id)
        await asyncio.sleep(0)

    service = runner(notes_start, FakeBroker(), workers=8)
    single = FakeDelivery(command(), message_id="c")
    await asyncio.gather(process(service, a_batch("a", "b")), process(service, single))
    assert started == ["a", "b", "c"]


async def test_effects_go_out_in_the_order_decided_never_held_for_a_slow_neighbour() -> None:
    """A slow command in a batch holds back neither its batch's other commands nor a later
    batch's: the pushes of ``b`` (first batch) go out before those of ``c`` (second batch),
    as they would one message at a time, and ``a``'s when it is done."""
    slow = asyncio.Event()

    async def a_is_slow(req: Request) -> None:
        if req.command_id == "a":
            await slow.wait()
        await pushes_and_answers(req)

    broker = FakeBroker()
    service = runner(a_is_slow, broker, workers=8)
    first = asyncio.create_task(process(service, a_batch("a", "b")))
    await poll(lambda: len(broker.published) == 1, 5, "b's effects")
    await process(service, a_batch("c"))
    assert not first.done(), "a is not done: its batch is not acked"
    slow.set()
    assert (await first).settled == ["ack"]
    replies = [e["reply"][0] for p in broker.published for e in p.body if "reply" in e]
    assert replies == ["b", "c", "a"]


@pytest.mark.parametrize(("transient", "settled"), [(False, "nack(requeue=True)"), (True, "ack")])
async def test_a_bug_while_publishing_effects_retries_durable_and_drops_transient(
    transient: bool, settled: str
) -> None:
    class BreaksOnBundles(FakeBroker):
        async def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> bool:
            if kw.get("message_type") == h.BUNDLE:
                raise RuntimeError("a bug")
            return await super().publish(exchange, routing_key, body, **kw)

    service = runner(pushes_and_answers, BreaksOnBundles(), workers=8)
    single = FakeDelivery(command(), message_id="a")
    assert (await process(service, single, transient)).settled == [settled]
