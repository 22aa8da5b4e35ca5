"""Publishing what handlers decided, and the verdict on each command that follows from it.

An outcome goes out alone (:meth:`Outcomes.publish`), or in turn with those decided at the
same moment (:meth:`Outcomes.publish_in_turn`): runs of outcomes made only of user pushes and
a reply travel as one bundle. When the broker fails a publish, the *same* outcomes are
published again, marked as repeats, rather than their commands run again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial

from shared.amqp.broker import Broker
from shared.batching import Batcher
from shared.errors import RealtimeError
from shared.runtime.publisher import Outcome, Publisher

log = logging.getLogger(__name__)
REPUBLISH_ATTEMPTS = 3  # publishes of one outcome before its commands are run again
REPUBLISH_WAIT_S = 5.0  # for the broker to be back, before each publish again


class Verdict(Enum):
    """What became of one command, and so of its message."""

    DONE = "done"  # answered (or not to be retried): ack
    RETRY = "retry"  # failed with attempts left: again, later
    DEAD = "dead"  # failed for the last time: to the dead letters


@dataclass(slots=True)
class _InTurn:
    """An outcome waiting to be published with others, and then the verdict on it."""

    outcome: Outcome
    verdict: Verdict = Verdict.RETRY  # until published


class Outcomes:
    """One service runner's publishing of outcomes. Transient ones go without confirms and
    are never run again: the next signal or typing replaces one that was lost."""

    def __init__(self, publisher: Publisher, broker: Broker) -> None:
        self.publisher = publisher
        self.broker = broker
        self._in_turn = {
            transient: Batcher(partial(self._publish_in_turn, transient), window_s=0.0)
            for transient in (False, True)
        }

    async def publish(self, outcome: Outcome, transient: bool) -> Verdict:
        """Publish one outcome now, alone."""

        async def publish(outcomes: list[Outcome]) -> None:
            await self.publisher.outcome(outcomes[0], confirm=not transient)

        return await self._published([outcome], publish, transient)

    async def publish_in_turn(self, decided: Outcome | Verdict, transient: bool) -> Verdict:
        """Publish ``decided`` together with those decided at the same moment (a group
        commit resolves many handlers in one loop turn) and those decided while the previous
        publish was being confirmed: one bundle for all their pushes and replies. Order is
        the order decided, as if each were published at once: a later command's pushes
        never overtake an earlier one's (a batch never waits for its slowest command). A
        verdict already reached (the handler crashed) is returned as it is."""
        if isinstance(decided, Verdict):
            return decided
        waiting = _InTurn(decided)
        await self._in_turn[transient].add(waiting)
        return waiting.verdict

    async def _publish_in_turn(self, transient: bool, waiting: list[_InTurn]) -> None:
        try:
            verdicts = await self._publish_runs([w.outcome for w in waiting], transient)
        except Exception:  # a bug: as if the broker had refused them
            log.exception("publishing the effects of %d commands failed", len(waiting))
            verdicts = [self._unpublished(transient)] * len(waiting)
        for one, verdict in zip(waiting, verdicts, strict=True):
            one.verdict = verdict

    async def _publish_runs(self, outcomes: list[Outcome], transient: bool) -> list[Verdict]:
        """Outcomes in order: each run of those made only of user pushes and a reply as one
        bundle, the others alone. Returns the verdict on each command."""
        verdicts: list[Verdict] = []
        run: list[Outcome] = []
        for one in [*outcomes, None]:  # None: the end, where the last run goes out
            if one is not None and one.bundles:
                run.append(one)
                continue
            if run:
                bundled = await self._publish_bundle(run, transient)
                verdicts += [bundled] * len(run)
                run = []
            if one is not None:
                verdicts.append(await self.publish(one, transient))
        return verdicts

    async def _publish_bundle(self, bundle: list[Outcome], transient: bool) -> Verdict:
        async def publish(outcomes: list[Outcome]) -> None:
            await self.publisher.bundle(outcomes, confirm=not transient)

        return await self._published(bundle, publish, transient)

    async def _published(
        self,
        outcomes: list[Outcome],
        publish: Callable[[list[Outcome]], Awaitable[None]],
        transient: bool,
    ) -> Verdict:
        """Publish ``outcomes``. When the broker fails that (it went away, or refused), wait
        for it and publish the *same* outcomes again, marked as repeats (some may have gone
        out), instead of running the commands again: a run again finds its work stored and
        may not know what it changed (a status set twice broadcasts nothing the second time).
        Only past :data:`REPUBLISH_WAIT_S` are the commands retried."""
        for attempt in range(REPUBLISH_ATTEMPTS):
            try:
                await publish(outcomes)
                return Verdict.DONE
            except RealtimeError:
                if transient or attempt + 1 == REPUBLISH_ATTEMPTS:
                    break
                if not await self.broker.until_connected(REPUBLISH_WAIT_S):
                    break
                outcomes = [replace(o, repeat=True) for o in outcomes]
        return self._unpublished(transient)

    @staticmethod
    def _unpublished(transient: bool) -> Verdict:
        if transient:
            return Verdict.DONE  # not retried: the next signal or typing replaces it
        log.warning("could not publish the effects of a command; will retry it")
        return Verdict.RETRY
