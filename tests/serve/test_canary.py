import threading

import pytest

from tuneline.errors import ConfigError
from tuneline.serve.canary import CanaryRouter, p95
from tuneline.serve.config import CanaryConfig

CHAMP, CAND = "m@champion", "m@candidate"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _router(percent=10.0, on_rollback=None, clock=None, **settings):
    cfg = CanaryConfig(percent=percent, window=50, min_requests=20, **settings)
    return CanaryRouter(cfg, CHAMP, CAND, clock=clock or FakeClock(), on_rollback=on_rollback)


def _feed(router, arm, n, latency=0.1, failures=0):
    for i in range(n):
        router.record(arm, latency, ok=i >= failures)


def test_split_is_close_to_percent_over_many_keys():
    router = _router(percent=10)
    share = sum(router.choose(f"user-{i}") == CAND for i in range(10_000)) / 10_000
    assert abs(share - 0.10) < 0.015


def test_choice_is_sticky():
    router, again = _router(percent=50), _router(percent=50)
    for i in range(200):
        assert router.choose(f"u{i}") == router.choose(f"u{i}") == again.choose(f"u{i}")


def test_percent_zero_never_candidate():
    router = _router(percent=0)
    assert all(router.choose(f"u{i}") == CHAMP for i in range(2_000))


def test_no_rollback_before_min_requests():
    router = _router()
    _feed(router, CHAMP, 50)
    _feed(router, CAND, 19, failures=19)
    assert not router.rolled_back
    assert router.status()["arms"]["candidate"]["error_rate"] == 1.0


def test_no_rollback_before_champion_has_min_requests():
    router = _router()
    _feed(router, CHAMP, 19)
    _feed(router, CAND, 50, failures=50)
    assert not router.rolled_back


def test_rollback_on_error_rate():
    calls = []
    clock = FakeClock()
    router = _router(on_rollback=calls.append, clock=clock)
    _feed(router, CHAMP, 40, failures=2)  # 5%
    clock.now += 7.5
    _feed(router, CAND, 20, failures=3)  # 15% > max(2 × 5%, 5% + 5%) = 10%
    assert router.rolled_back
    assert "error rate 15.0%" in router.rollback_reason
    assert "limit 10.0%" in router.rollback_reason
    assert calls == [router.rollback_reason]
    status = router.status()
    assert status["rolled_back"] and status["reason"] == router.rollback_reason
    assert status["rolled_back_after_s"] == 7.5


def test_error_floor_tolerates_one_failure_against_a_perfect_champion():
    router = _router()
    _feed(router, CHAMP, 40)
    _feed(router, CAND, 40, failures=1)  # 2.5% ≤ 0% + 5 points
    assert not router.rolled_back


def test_rollback_on_p95_latency():
    router = _router()
    _feed(router, CHAMP, 40, latency=0.2)
    _feed(router, CAND, 20, latency=0.5)  # 0.5 > 2 × 0.2
    assert router.rolled_back
    assert "p95 latency 0.500s > limit 0.400s" in router.rollback_reason


def test_no_rollback_when_candidate_is_as_good():
    router = _router()
    for i in range(200):
        router.record(CHAMP, 0.1 + (i % 10) / 100, ok=i % 25 != 0)
        router.record(CAND, 0.1 + (i % 10) / 100, ok=i % 25 != 0)
    assert not router.rolled_back
    assert router.status()["arms"]["candidate"]["requests"] == 50  # the window


def test_after_rollback_always_champion_and_callback_once():
    calls = []
    router = _router(percent=100, on_rollback=calls.append)
    assert router.choose("anyone") == CAND
    _feed(router, CHAMP, 20)
    _feed(router, CAND, 60, failures=60)
    assert all(router.choose(f"u{i}") == CHAMP for i in range(500))
    assert len(calls) == 1
    _feed(router, CAND, 20)  # recovering does not undo the rollback
    assert router.rolled_back and len(calls) == 1


def test_concurrent_failures_call_back_once():
    calls = []
    router = _router(on_rollback=calls.append)
    _feed(router, CHAMP, 20)
    threads = [threading.Thread(target=_feed, args=(router, CAND, 50, 0.1, 50))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert router.rolled_back and len(calls) == 1


def test_status_before_any_request():
    status = _router().status()
    assert status["percent"] == 10 and status["champion"] == CHAMP
    assert status["arms"]["champion"] == {"model": CHAMP, "requests": 0, "error_rate": None,
                                          "p95_latency_s": None}
    assert not status["rolled_back"] and status["reason"] is None


def test_unknown_arm_and_same_models_are_refused():
    with pytest.raises(ValueError, match="neither"):
        _router().record("other", 0.1, ok=True)
    with pytest.raises(ConfigError, match="both"):
        CanaryRouter(CanaryConfig(percent=5), CHAMP, CHAMP)


def test_p95_nearest_rank():
    assert p95([]) is None
    assert p95([float(i) for i in range(1, 101)]) == 95.0
    assert p95([3.0]) == 3.0
