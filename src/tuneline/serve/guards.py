"""Request guards for the server: hashed API keys, the loopback bind rule, rate limits, quotas."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tuneline.errors import ConfigError
from tuneline.serve.config import AuthConfig

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SECONDS_PER_DAY = 86_400
# Beyond this many buckets, full (idle) ones are dropped so per-client keys cannot grow memory.
_MAX_BUCKETS = 10_000


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest (64 lowercase characters) of an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyStore:
    """API keys as (name, SHA-256 digest) pairs; the clear keys are never kept.

    Args:
        entries: (name, hex digest) pairs; a name may own several keys.
        env_var: The environment variable keys are read from, named in advice messages.
    """

    def __init__(self, entries: list[tuple[str, str]], env_var: str = "TUNELINE_API_KEYS"):
        self._entries = [(name, digest.lower()) for name, digest in entries]
        self.env_var = env_var

    @classmethod
    def from_config(cls, auth: AuthConfig, environ: Mapping[str, str] = os.environ) -> ApiKeyStore:
        """Load keys from `auth.api_keys_env` and `auth.api_keys_file`.

        Args:
            auth: The `serve.auth` config section.
            environ: Where the environment variable is looked up.

        Returns:
            The store; empty (not `enabled`) when neither source has a key.

        Raises:
            ConfigError: The file is missing, or entries are malformed (all of them listed,
                each named by file:line or by the variable and entry number).
        """
        found: list[tuple[str, str]] = []
        env = auth.api_keys_env
        for number, entry in enumerate(environ.get(env, "").split(","), start=1):
            if entry.strip():
                found.append((f"${env} entry {number}", entry.strip()))
        if auth.api_keys_file is not None:
            found += _file_entries(auth.api_keys_file)
        parsed, problems = [], []
        for where, entry in found:
            try:
                parsed.append(_parse_entry(entry, where))
            except ValueError as exc:
                problems.append(str(exc))  # keep going: report every bad entry at once
        if problems:
            raise ConfigError(problems, source="serve.auth")
        unnamed = iter(range(1, len(parsed) + 1))
        entries = [(name or f"key-{next(unnamed)}", digest) for name, digest in parsed]
        return cls(entries, env_var=env)

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (and so requests must present one)."""
        return bool(self._entries)

    @property
    def names(self) -> list[str]:
        """The key names, each once, in load order."""
        return list(dict.fromkeys(name for name, _ in self._entries))

    def identify(self, presented: str | None) -> str | None:
        """Return the name of the key presented (in clear), or None if absent or unknown."""
        if not presented:
            return None
        digest = hash_key(presented)
        match: str | None = None
        # Compare against every entry, without stopping early, so timing says nothing.
        for name, stored in self._entries:
            if hmac.compare_digest(digest, stored) and match is None:
                match = name
        return match

    def __repr__(self) -> str:
        return f"ApiKeyStore(names={self.names!r})"


def _parse_entry(entry: str, where: str) -> tuple[str | None, str]:
    """Parse `key`, `name:key` or `name:sha256:<hex>` into (name or None, digest)."""
    name, sep, rest = entry.partition(":")
    if not sep:
        return None, hash_key(entry)
    name, rest = name.strip(), rest.strip()
    if not name:
        raise ValueError(f"{where}: empty name before ':' (write 'name:key' or just 'key')")
    scheme, _, digest = rest.partition(":")
    if scheme == "sha256":
        if not _HEX64.fullmatch(digest):
            raise ValueError(f"{where}: 'sha256:' must be followed by 64 hex characters, got "
                             f"{len(digest)} characters; regenerate the line with "
                             "`tuneline serve-key NAME`")
        return name, digest.lower()
    if not rest:
        raise ValueError(f"{where}: empty key after '{name}:'")
    return name, hash_key(rest)


def _file_entries(path: Path) -> list[tuple[str, str]]:
    """Return ('file:line', entry) for each line that is neither blank nor a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"serve.auth.api_keys_file: {path} does not exist; create it with "
                           f"`tuneline serve-key NAME >> {path}` or unset the field"]) from None
    except OSError as exc:
        raise ConfigError([f"serve.auth.api_keys_file: cannot read {path}: {exc}"]) from exc
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), start=1))
    return [(f"{path}:{n}", entry) for n, entry in lines if entry and not entry.startswith("#")]


def bearer_token(authorization_header: str | None) -> str | None:
    """Return the key of an `Authorization: Bearer <key>` header; None if absent or another scheme.

    Args:
        authorization_header: The header's value, or None when absent.
    """
    scheme, _, token = (authorization_header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def make_key_line(name: str) -> tuple[str, str]:
    """Make a new random API key and the keys-file line that stores only its hash.

    Args:
        name: Who the key is for; non-empty, without ':' or whitespace.

    Returns:
        (the key in clear, to hand out once; the line `name:sha256:<digest>`).

    Raises:
        ConfigError: The name is empty or holds ':' or whitespace.
    """
    if not name or ":" in name or any(c.isspace() for c in name):
        raise ConfigError([f"key name {name!r}: use a non-empty name without ':' or spaces"])
    key = "tl-" + secrets.token_urlsafe(32)
    return key, f"{name}:sha256:{hash_key(key)}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def resolve_bind_host(host: str, keys: ApiKeyStore) -> tuple[str, str | None]:
    """Apply the rule that binding beyond loopback needs an API key.

    Args:
        host: The configured `serve.host`.
        keys: The loaded API keys.

    Returns:
        (host, None) when allowed, else ("127.0.0.1", why and how to fix).
    """
    if _is_loopback(host) or keys.enabled:
        return host, None
    message = (
        f"serve.host={host} would accept connections beyond this machine, which needs an API "
        "key; binding 127.0.0.1 instead. Set a key with `tuneline serve-key NAME >> keys.txt` "
        f"and serve.auth.api_keys_file=keys.txt, or export {keys.env_var}=name:key"
    )
    return "127.0.0.1", message


class RateLimiter:
    """A thread-safe token bucket per key: `burst` requests at once, refilled steadily.

    Args:
        requests_per_minute: Refill rate of each bucket.
        burst: Bucket size; a key seen for the first time starts with a full bucket.
        clock: Monotonic seconds; injectable for tests.

    Raises:
        ConfigError: The rate or burst is not positive.
    """

    def __init__(self, requests_per_minute: float, burst: int,
                 clock: Callable[[], float] = time.monotonic):
        if requests_per_minute <= 0 or burst < 1:
            raise ConfigError([f"serve.limits: requests_per_minute={requests_per_minute} and "
                               f"burst={burst} must be positive"])
        self._rate = requests_per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when measured)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float | None:
        """Take one token for `key` (an API key name or another client identity).

        Returns:
            None when the request may go ahead; else the seconds until a token is available
            (for `Retry-After`), and nothing is consumed.
        """
        with self._lock:
            now = self._clock()
            if key not in self._buckets and len(self._buckets) >= _MAX_BUCKETS:
                # A full bucket behaves exactly like a missing one, so dropping it is harmless.
                self._buckets = {k: b for k, b in self._buckets.items()
                                 if self._level(b, now) < self._burst}
            tokens = self._level(self._buckets.get(key, (self._burst, now)), now)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            return None if allowed else (1.0 - tokens) / self._rate

    def _level(self, bucket: tuple[float, float], now: float) -> float:
        tokens, last = bucket
        return min(self._burst, tokens + (now - last) * self._rate)


class DailyQuota:
    """Thread-safe prompt + completion tokens per key per UTC day.

    A request is admitted while its key has tokens left and charged when done, so it may
    overshoot the quota by its own size.

    Args:
        tokens_per_day: Tokens each key may use per UTC day.
        clock: Unix time in seconds; injectable for tests.

    Raises:
        ConfigError: `tokens_per_day` is not positive.
    """

    def __init__(self, tokens_per_day: int, clock: Callable[[], float] = time.time):
        if tokens_per_day < 1:
            raise ConfigError([f"serve.limits.daily_token_quota={tokens_per_day} must be >= 1"])
        self._limit = tokens_per_day
        self._clock = clock
        self._day = -1
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float | None:
        """Return None while `key` has tokens left today, else the seconds until UTC midnight."""
        with self._lock:
            now = self._roll()
            if self._used.get(key, 0) < self._limit:
                return None
            return _SECONDS_PER_DAY - now % _SECONDS_PER_DAY

    def charge(self, key: str, tokens: int) -> None:
        """Add a finished request's `tokens` to today's use by `key` (negatives are ignored)."""
        with self._lock:
            self._roll()
            self._used[key] = self._used.get(key, 0) + max(0, tokens)

    def used(self, key: str) -> int:
        """Return the tokens `key` has used today (UTC)."""
        with self._lock:
            self._roll()
            return self._used.get(key, 0)

    def _roll(self) -> float:
        """Reset the counters when the UTC day changed; return the clock's reading."""
        now = self._clock()
        # Unix time has no leap seconds, so whole multiples of 86400 are UTC midnights.
        if (day := int(now // _SECONDS_PER_DAY)) != self._day:
            self._day, self._used = day, {}
        return now
