"""One typed table per service: commands, facts and timers are validated by their model
before the handler runs, and the runner settles bad data the same way for every service."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from pydantic import BaseModel

from shared.amqp.broker import Broker
from shared.auth import Identity, Role
from shared.errors import Forbidden, InternalError, InvalidPayload
from shared.protocol.domain import CALL_ENDED, CallFact
from shared.protocol.presence import MentorBusy
from shared.runtime.outbox import Request
from shared.runtime.routes import MalformedWork, command, fact, routes, timer, validate
from shared.runtime.service import ServiceDefinition, ServiceRunner
from shared.settings import Settings
from tests.support.runtime import FakeBroker, FakeDelivery, process

MENTOR = Identity("m1", Role.MENTOR, "M")
STUDENT = Identity("s1", Role.STUDENT, "S")


class Tick(BaseModel):
    n: int


async def ignore(req: Request) -> None:
    return None


def test_a_client_command_takes_the_registry_s_model_and_checks_the_role() -> None:
    route = command("mentor_busy", ignore)
    assert route.model is MentorBusy
    assert validate(route, {"status": "break"}, MENTOR) == MentorBusy(status="break")
    with pytest.raises(Forbidden):
        validate(route, {}, STUDENT)
    with pytest.raises(InvalidPayload, match="status"):
        validate(route, {"status": "asleep"}, MENTOR)
    with pytest.raises(InternalError):
        validate(route, {}, None)


def test_a_command_outside_the_registry_names_its_model_and_one_inside_may_not_differ() -> None:
    with pytest.raises(ValueError, match="name its model"):
        command("not_a_client_event", ignore)
    with pytest.raises(ValueError, match="MentorBusy"):
        command("mentor_busy", ignore, Tick)
    assert validate(command("ticks", ignore, Tick), {"n": 2}, STUDENT) == Tick(n=2)


def test_facts_and_timers_that_do_not_fit_are_malformed_not_answered() -> None:
    ended = fact(CALL_ENDED, ignore)
    data = {"call_id": "c", "caller_id": "a", "receiver_id": "b"}
    assert validate(ended, data, None) == CallFact(**data)
    with pytest.raises(MalformedWork, match="receiver_id"):
        validate(ended, {"call_id": "c", "caller_id": "a"}, None)
    with pytest.raises(MalformedWork, match="n"):
        validate(timer("tick", Tick, ignore), {"n": "many"}, None)


def test_a_name_routed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        routes(timer("tick", Tick, ignore), timer("tick", Tick, ignore))


def test_a_service_follows_exactly_the_facts_it_routes() -> None:
    definition = ServiceDefinition(
        "svc", routes(fact(CALL_ENDED, ignore), timer("tick", Tick, ignore))
    )
    assert definition.facts == [CALL_ENDED]


def _runner(broker: FakeBroker, seen: list[Any]) -> ServiceRunner:
    async def tick(req: Request) -> None:
        seen.append(req.payload_as(Tick))

    definition = ServiceDefinition("svc", routes(timer("tick", Tick, tick)))
    return ServiceRunner(definition, Settings(), cast(Broker, cast(Any, broker)))


def _timer(data: dict[str, Any]) -> FakeDelivery:
    body = json.dumps({"event": "tick", "data": data}).encode()
    return FakeDelivery(body, reply_to=None, correlation_id=None)


async def test_the_runner_hands_a_timer_its_typed_data() -> None:
    seen: list[Any] = []
    delivery = await process(_runner(FakeBroker(), seen), _timer({"n": 3}))
    assert seen == [Tick(n=3)]
    assert delivery.settled == ["ack"]


async def test_the_runner_dead_letters_a_malformed_timer_without_running_its_handler() -> None:
    seen: list[Any] = []
    broker = FakeBroker()
    delivery = await process(_runner(broker, seen), _timer({"n": "three"}))
    assert seen == []
    assert delivery.settled == ["reject(requeue=False)"]
    assert broker.published == []
