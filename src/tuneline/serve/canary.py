"""Canary rollout: sticky traffic split between champion and candidate, with automatic rollback."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuneline.errors import ConfigError
from tuneline.serve.config import CanaryConfig

# An absolute floor on the error-rate test, so a champion with 0% errors does not make a
# single candidate failure (0% × factor = 0%) trigger a rollback.
_ERROR_RATE_FLOOR = 0.05


@dataclass(frozen=True)
class _Outcome:
    latency_s: float
    ok: bool


def sticky_fraction(key: str) -> float:
    """A stable position of `key` in [0, 100), uniform over keys (from its SHA-256).

    Args:
        key: What pins a user to an arm (user id header, API key name, client address).

    Returns:
        The same number for the same key in every process.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def p95(latencies: list[float]) -> float | None:
    """95th percentile by nearest rank; None for no values."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _error_rate(outcomes: list[_Outcome]) -> float | None:
    """Share of failed outcomes; None for no values."""
    if not outcomes:
        return None
    return sum(not o.ok for o in outcomes) / len(outcomes)


class CanaryRouter:
    """Sends a sticky share of users to a candidate model and rolls back if it does worse.

    Rollback lasts for the process lifetime: once the candidate has been judged worse, every
    request goes to the champion until the server restarts with a new configuration.
    """

    def __init__(
        self,
        settings: CanaryConfig,
        champion: str,
        candidate: str,
        clock: Callable[[], float] = time.monotonic,
        on_rollback: Callable[[str], None] | None = None,
    ) -> None:
        """Set up the router.

        Args:
            settings: `serve.canary` (percent, window, thresholds).
            champion: Served model name of the current champion.
            candidate: Served model name of the candidate.
            clock: Seconds, monotonic; injectable for tests.
            on_rollback: Called once, with the reason, when the router rolls back.

        Raises:
            ConfigError: Champion and candidate are the same model.
        """
        if champion == candidate:
            raise ConfigError([f"serve.canary: champion and candidate are both {champion!r}; "
                               "set serve.canary.candidate to another model"])
        self.settings = settings
        self.champion = champion
        self.candidate = candidate
        self.rolled_back = False
        self.rollback_reason: str | None = None
        self._clock = clock
        self._started = clock()
        self._rolled_back_after_s: float | None = None
        self._on_rollback = on_rollback
        self._lock = threading.Lock()
        self._windows: dict[str, deque[_Outcome]] = {
            champion: deque(maxlen=settings.window),
            candidate: deque(maxlen=settings.window),
        }

    def choose(self, sticky_key: str) -> str:
        """The served model name for the user behind `sticky_key`.

        Args:
            sticky_key: Stable per user; the same key always gets the same arm.

        Returns:
            The candidate for `settings.percent`% of keys, the champion otherwise and always
            after a rollback.
        """
        if self.rolled_back or self.settings.percent <= 0:
            return self.champion
        if sticky_fraction(sticky_key) < self.settings.percent:
            return self.candidate
        return self.champion

    def record(self, arm: str, latency_s: float, ok: bool) -> None:
        """Add one finished request to its arm's window and check the candidate.

        Args:
            arm: The served model name `choose` returned.
            latency_s: Wall time of the request, failures included.
            ok: False only for server-side failures (5xx, timeout), not client errors.

        Raises:
            ValueError: `arm` is neither the champion nor the candidate.
        """
        if arm not in self._windows:
            raise ValueError(f"arm {arm!r} is neither {self.champion!r} nor {self.candidate!r}")
        with self._lock:
            self._windows[arm].append(_Outcome(latency_s, ok))
            reason = self._rollback_reason() if arm == self.candidate else None
            if reason is not None:
                self.rolled_back = True
                self.rollback_reason = reason
                self._rolled_back_after_s = self._clock() - self._started
        # Outside the lock, so a callback that reads status() does not deadlock; the flag
        # above was set under the lock, so only one caller ever gets here.
        if reason is not None and self._on_rollback is not None:
            self._on_rollback(reason)

    def _rollback_reason(self) -> str | None:
        if self.rolled_back:
            return None
        champ, cand = list(self._windows[self.champion]), list(self._windows[self.candidate])
        if min(len(champ), len(cand)) < self.settings.min_requests:
            return None
        champ_err, cand_err = _error_rate(champ) or 0.0, _error_rate(cand) or 0.0
        err_limit = max(self.settings.max_error_rate_factor * champ_err,
                        champ_err + _ERROR_RATE_FLOOR)
        if cand_err > err_limit:
            return (f"candidate {self.candidate} error rate {cand_err:.1%} over {len(cand)} "
                    f"requests > limit {err_limit:.1%} (champion {self.champion}: "
                    f"{champ_err:.1%} over {len(champ)})")
        champ_p95 = p95([o.latency_s for o in champ]) or 0.0
        cand_p95 = p95([o.latency_s for o in cand]) or 0.0
        p95_limit = self.settings.max_p95_factor * champ_p95
        if cand_p95 > p95_limit:
            return (f"candidate {self.candidate} p95 latency {cand_p95:.3f}s > limit "
                    f"{p95_limit:.3f}s ({self.settings.max_p95_factor:g} × champion "
                    f"{self.champion} p95 {champ_p95:.3f}s)")
        return None

    def status(self) -> dict[str, Any]:
        """Split, rollback state and per-arm window statistics, for /health or metrics."""
        with self._lock:
            arms = {role: self._arm_status(name) for role, name in
                    (("champion", self.champion), ("candidate", self.candidate))}
            return {
                "percent": self.settings.percent,
                "champion": self.champion,
                "candidate": self.candidate,
                "rolled_back": self.rolled_back,
                "reason": self.rollback_reason,
                "rolled_back_after_s": self._rolled_back_after_s,
                "arms": arms,
            }

    def _arm_status(self, name: str) -> dict[str, Any]:
        outcomes = list(self._windows[name])
        return {
            "model": name,
            "requests": len(outcomes),
            "error_rate": _error_rate(outcomes),
            "p95_latency_s": p95([o.latency_s for o in outcomes]),
        }
