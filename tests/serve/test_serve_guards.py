"""Server guards: API keys hashed at rest, the loopback bind rule, rate limits, daily quotas."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tuneline.errors import ConfigError
from tuneline.serve.config import AuthConfig
from tuneline.serve.guards import (
    ApiKeyStore,
    DailyQuota,
    RateLimiter,
    bearer_token,
    hash_key,
    make_key_line,
    resolve_bind_host,
)

ENV = "TUNELINE_API_KEYS"


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def store_from(tmp_path: Path, lines: list[str] | None = None, env: str = "") -> ApiKeyStore:
    keys_file = None
    if lines is not None:
        keys_file = tmp_path / "keys.txt"
        keys_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    auth = AuthConfig(api_keys_file=keys_file)
    return ApiKeyStore.from_config(auth, environ={ENV: env} if env else {})


def test_hash_key_is_sha256_hex():
    assert hash_key("secret") == hashlib.sha256(b"secret").hexdigest()
    assert len(hash_key("x")) == 64 and hash_key("x") != hash_key("y")


def test_store_keeps_no_clear_key(tmp_path):
    store = store_from(tmp_path, ["alice:clear-alice-key-123"], env="bob:clear-bob-key-456")
    state = repr(vars(store)) + repr(store)
    assert "clear-alice-key-123" not in state and "clear-bob-key-456" not in state
    assert hash_key("clear-alice-key-123") in state  # the digest is what is kept
    assert store.identify("clear-alice-key-123") == "alice"
    assert store.identify("clear-bob-key-456") == "bob"


def test_env_entries_named_and_unnamed(tmp_path):
    store = store_from(tmp_path, env=" k1 , ci:k2,, k3 ")
    assert store.enabled
    assert store.names == ["key-1", "ci", "key-2"]
    assert store.identify("k1") == "key-1"
    assert store.identify("k2") == "ci"
    assert store.identify("k3") == "key-2"
    assert store.identify(" k1 ") is None


def test_file_entries_hashed_named_bare_comments(tmp_path):
    digest = hash_key("hashed-key")
    store = store_from(tmp_path, [
        "# team keys", "", f"ops:sha256:{digest.upper()}", "   ", "dev:dev-key",
        "  bare-key  ", "# bare-but-commented",
    ])
    assert store.names == ["ops", "dev", "key-1"]
    assert store.identify("hashed-key") == "ops"
    assert store.identify(digest) is None  # the digest itself is not a key
    assert store.identify("dev-key") == "dev"
    assert store.identify("bare-key") == "key-1"
    assert store.identify("# bare-but-commented") is None


def test_env_and_file_combine(tmp_path):
    store = store_from(tmp_path, ["f:file-key"], env="e:env-key")
    assert store.names == ["e", "f"]
    assert store.identify("file-key") == "f" and store.identify("env-key") == "e"


def test_no_keys_means_disabled(tmp_path):
    store = store_from(tmp_path)
    assert not store.enabled and store.names == []
    assert store.identify("anything") is None
    assert not store_from(tmp_path, ["# only a comment", ""]).enabled


@pytest.mark.parametrize("identify_arg", [None, "", "wrong", "right "])
def test_identify_rejects_wrong_or_missing(tmp_path, identify_arg):
    store = store_from(tmp_path, env="svc:right")
    assert store.identify("right") == "svc"
    assert store.identify(identify_arg) is None


def test_malformed_lines_name_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        store_from(tmp_path, [
            "ok:fine", "# comment", "bad:sha256:nothex", "empty:", ":nameless", "x:sha256:",
        ])
    keys_file = tmp_path / "keys.txt"
    problems = err.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith(f"{keys_file}:3:") and "64 hex" in problems[0]
    assert problems[1].startswith(f"{keys_file}:4:") and "empty key" in problems[1]
    assert problems[2].startswith(f"{keys_file}:5:") and "empty name" in problems[2]
    assert problems[3].startswith(f"{keys_file}:6:")


def test_short_digest_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"keys\.txt:1:"):
        store_from(tmp_path, [f"a:sha256:{hash_key('k')[:-1]}"])


def test_malformed_env_entry_is_named(tmp_path):
    with pytest.raises(ConfigError, match=rf"\${ENV} entry 2: empty key"):
        store_from(tmp_path, env="good,bad:")


def test_error_does_not_echo_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        store_from(tmp_path, ["good:super-secret-value", ":super-secret-other"])
    assert "super-secret" not in str(err.value)


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope" / "keys.txt"
    with pytest.raises(ConfigError, match="does not exist") as err:
        ApiKeyStore.from_config(AuthConfig(api_keys_file=missing), environ={})
    assert str(missing) in str(err.value)


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"),
    ("bearer   abc  ", "abc"),
    ("BEARER tl-x_y-z", "tl-x_y-z"),
    ("Bearer", None),
    ("Bearer    ", None),
    ("Basic abc", None),
    ("abc", None),
    ("", None),
    (None, None),
])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_make_key_line_round_trip(tmp_path):
    key, line = make_key_line("alice")
    assert key.startswith("tl-") and len(key) > 40
    assert line == f"alice:sha256:{hash_key(key)}"
    assert key not in line
    store = store_from(tmp_path, [line])
    assert store.identify(key) == "alice"
    assert make_key_line("alice")[0] != key


@pytest.mark.parametrize("name", ["", "a:b", "a b"])
def test_make_key_line_rejects_bad_names(name):
    with pytest.raises(ConfigError):
        make_key_line(name)


def test_bind_beyond_loopback_needs_a_key(tmp_path):
    none = store_from(tmp_path)
    host, message = resolve_bind_host("0.0.0.0", none)
    assert host == "127.0.0.1"
    assert message is not None and "API key" in message and ENV in message
    assert "serve-key" in message and "0.0.0.0" in message
    assert resolve_bind_host("192.168.1.10", none)[0] == "127.0.0.1"
    assert resolve_bind_host("::", none)[0] == "127.0.0.1"
    assert resolve_bind_host("example.org", none)[0] == "127.0.0.1"


def test_bind_with_keys_passes(tmp_path):
    keyed = store_from(tmp_path, env="k")
    assert resolve_bind_host("0.0.0.0", keyed) == ("0.0.0.0", None)
    assert resolve_bind_host("::", keyed) == ("::", None)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost"])
def test_loopback_passes_without_keys(tmp_path, host):
    assert resolve_bind_host(host, store_from(tmp_path)) == (host, None)


def test_rate_limiter_burst_then_wait_then_refill():
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=30, burst=3, clock=clock)  # one token per 2 s
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("a") == pytest.approx(2.0)
    clock.now += 0.5
    assert limiter.acquire("a") == pytest.approx(1.5)  # a refusal consumes nothing
    assert limiter.acquire("b") is None  # buckets are per key
    clock.now += 1.5
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") == pytest.approx(2.0)
    clock.now += 3600  # refill caps at burst
    assert [limiter.acquire("a") for _ in range(4)][:3] == [None, None, None]
    assert limiter.acquire("a") is not None


def test_rate_limiter_drops_only_full_buckets(monkeypatch):
    monkeypatch.setattr("tuneline.serve.guards._MAX_BUCKETS", 2)
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, burst=2, clock=clock)  # one token per second
    assert limiter.acquire("a") is None and limiter.acquire("a") is None
    assert limiter.acquire("b") is None
    assert limiter.acquire("c") is None  # over the cap, but a and b are not full: both kept
    assert limiter.acquire("a") == pytest.approx(1.0)
    assert len(limiter._buckets) == 3
    clock.now += 10
    assert limiter.acquire("d") is None  # now a, b, c are full and dropped
    assert sorted(limiter._buckets) == ["d"]
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, pytest.approx(1.0)]


def test_rate_limiter_is_thread_safe():
    limiter = RateLimiter(requests_per_minute=1e-6, burst=50, clock=FakeClock())
    allowed = []

    def worker():
        for _ in range(40):
            if limiter.acquire("k") is None:
                allowed.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 50


def test_rate_limiter_rejects_bad_settings():
    with pytest.raises(ConfigError):
        RateLimiter(requests_per_minute=0, burst=1)
    with pytest.raises(ConfigError):
        RateLimiter(requests_per_minute=10, burst=0)


def test_daily_quota_resets_at_utc_midnight():
    ten_to_midnight = datetime(2024, 7, 26, 23, 50, tzinfo=UTC).timestamp()
    clock = FakeClock(ten_to_midnight)
    quota = DailyQuota(tokens_per_day=100, clock=clock)
    assert quota.check("a") is None
    quota.charge("a", 60)
    assert quota.check("a") is None and quota.used("a") == 60
    quota.charge("a", 50)  # admitted while under the quota, so it may overshoot
    assert quota.used("a") == 110
    assert quota.check("a") == pytest.approx(600.0)
    assert quota.check("b") is None and quota.used("b") == 0  # per key
    clock.now += 599
    assert quota.check("a") == pytest.approx(1.0)
    clock.now += 1  # 2024-07-27 00:00:00 UTC
    assert quota.check("a") is None and quota.used("a") == 0
    quota.charge("a", 100)
    assert quota.check("a") == pytest.approx(86_400.0)


def test_daily_quota_ignores_negative_and_rejects_bad_setting():
    quota = DailyQuota(tokens_per_day=5, clock=FakeClock())
    quota.charge("a", -10)
    assert quota.used("a") == 0
    with pytest.raises(ConfigError):
        DailyQuota(tokens_per_day=0)
