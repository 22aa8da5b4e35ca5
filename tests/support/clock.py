"""A clock the test moves by hand: pass it where code takes ``clock: Callable[[], float]``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeClock:
    t: float = 0.0

    def __call__(self) -> float:
        return self.t
