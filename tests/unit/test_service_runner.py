"""How the runtime settles each message (no broker): ack after the effects are published,
an error reply for a refusal, a retry for a crash, dead-lettering on the last attempt (even
when the sender cannot be told), undecodable and expired messages."""

from __future__ import annotations

import pytest

from shared.amqp import headers as h
from shared.errors import Conflict
from shared.runtime.outbox import Request
from tests.support.runtime import DELIVERY_LIMIT as LIMIT
from tests.support.runtime import FakeBroker, FakeDelivery, Note, command, process, runner


async def answers(req: Request) -> None:
    req.out.emit("svc.done", {"n": 1})
    req.out.reply = {"done": True}


async def refuses(req: Request) -> None:
    raise Conflict("already done")


async def crashes(req: Request) -> None:
    raise RuntimeError("a bug")


async def test_effects_then_reply_then_ack() -> None:
    broker = FakeBroker()
    delivery = await process(runner(answers, broker), FakeDelivery(command()))
    assert [p.routing_key for p in broker.published] == ["svc.done", "gw.q"]
    assert broker.replies() == [{"ok": True, "data": {"done": True}}]
    assert delivery.settled == ["ack"]


async def test_a_refusal_is_answered_and_acked() -> None:
    broker = FakeBroker()
    delivery = await process(runner(refuses, broker), FakeDelivery(command()))
    [reply] = broker.replies()
    assert (reply["ok"], reply["code"]) == (False, "conflict")
    assert delivery.settled == ["ack"]


async def test_a_crash_is_retried_without_a_reply() -> None:
    broker = FakeBroker()
    delivery = await process(runner(crashes, broker), FakeDelivery(command()))
    assert broker.published == []
    assert delivery.settled == ["nack(requeue=True)"]


@pytest.mark.parametrize("attempts_before", [LIMIT - 1, LIMIT + 4])
async def test_the_last_attempt_tells_the_sender_and_dead_letters(attempts_before: int) -> None:
    broker = FakeBroker()
    last = FakeDelivery(command(), headers={"x-delivery-count": attempts_before})
    delivery = await process(runner(crashes, broker), last)
    [reply] = broker.replies()
    assert (reply["ok"], reply["code"]) == (False, "internal")
    assert delivery.settled == ["reject(requeue=False)"]


async def test_the_last_attempt_dead_letters_even_when_the_sender_cannot_be_told() -> None:
    broker = FakeBroker(failing=True)
    last = FakeDelivery(command(), headers={"x-delivery-count": LIMIT - 1})
    delivery = await process(runner(crashes, broker), last)
    assert delivery.settled == ["reject(requeue=False)"], "never left unsettled"


async def test_effects_that_cannot_be_published_are_retried() -> None:
    broker = FakeBroker(failing=True)
    delivery = await process(runner(answers, broker), FakeDelivery(command()))
    assert delivery.settled == ["nack(requeue=True)"]


async def test_an_undecodable_message_is_dead_lettered_unanswered() -> None:
    broker = FakeBroker()
    delivery = await process(runner(answers, broker), FakeDelivery(b"{not json"))
    assert broker.published == []
    assert delivery.settled == ["reject(requeue=False)"]


async def test_a_command_past_its_deadline_is_dropped_unexecuted() -> None:
    broker = FakeBroker()
    ran: list[Request] = []

    async def records(req: Request) -> None:
        ran.append(req)

    late = FakeDelivery(command(), headers={h.DEADLINE: h.epoch_ms() - 1})
    service = runner(records, broker)
    delivery = await process(service, late)
    assert ran == [] and broker.published == []
    assert delivery.settled == ["ack"]
    assert service.expired.total == 1


async def test_an_event_without_a_handler_is_answered_internal_not_retried() -> None:
    broker = FakeBroker()
    delivery = await process(runner(answers, broker), FakeDelivery(command("unknown")))
    [reply] = broker.replies()
    assert (reply["ok"], reply["code"]) == (False, "internal")
    assert delivery.settled == ["ack"]


async def test_a_redelivered_command_says_so_to_its_handler() -> None:
    seen: list[bool] = []

    async def notes(req: Request) -> None:
        seen.append(req.redelivered)

    broker = FakeBroker()
    await process(runner(notes, broker), FakeDelivery(command()))
    again = await process(runner(notes, broker), FakeDelivery(command(), redelivered=True))
    assert seen == [False, True] and again.settled == ["ack"]


async def test_the_pushes_of_a_command_run_again_are_marked_as_repeats() -> None:
    async def pushes(req: Request) -> None:
        req.out.push_user("bob", Note(seq=1))
        req.out.push_all(Note(id="m1"))

    broker = FakeBroker()
    await process(runner(pushes, broker), FakeDelivery(command()))
    first = [p.kwargs.get("headers") or {} for p in broker.published if p.kwargs.get("headers")]
    broker.published.clear()
    await process(runner(pushes, broker), FakeDelivery(command(), redelivered=True))
    again = [p.kwargs.get("headers") or {} for p in broker.published]
    assert not any(h.REPEAT in headers for headers in first)
    assert len(again) == 3 and all(h.REPEAT in headers for headers in again[:2])
    assert again[2] == {} or h.REPEAT not in again[2], "the reply is no push"


async def test_effects_the_broker_failed_are_published_again_not_run_again() -> None:
    """A run again would find its work stored; it may not know what it changed."""
    runs: list[bool] = []

    async def pushes(req: Request) -> None:
        runs.append(req.redelivered)
        req.out.push_user("bob", Note(seq=1))
        req.out.emit("svc.done", {"n": 1})

    broker = FakeBroker(blips=1)
    delivery = await process(runner(pushes, broker), FakeDelivery(command()))
    assert runs == [False], "the handler ran once"
    assert delivery.settled == ["ack"]
    push = next(p for p in broker.published if p.routing_key == "user.bob")
    assert h.REPEAT in push.kwargs["headers"], "published again: it may have gone out before"
    assert broker.replies() == [{"ok": True, "data": {}}]
