"""Exponential reconnect backoff with jitter; pure arithmetic, the caller owns sleeping and randomness."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from auditor.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before reconnect attempt `attempt` (0 = first retry after a failure).

    The base delay grows `initial * multiplier**attempt` up to `maximum`; jitter then takes away a
    random fraction of up to `jitter` of it, so many clients restarted together spread out instead
    of reconnecting in lock step.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial:
            raise ConfigError(f"backoff: need 0 <= initial <= maximum, got {self.initial} and {self.maximum}")
        if self.multiplier < 1:
            raise ConfigError(f"backoff: multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"backoff: jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt`; `rand` returns a float in [0, 1)."""
        base = self.initial * self.multiplier ** min(attempt, 64)
        base = min(self.maximum, base)
        return base * (1.0 - self.jitter * rand())
