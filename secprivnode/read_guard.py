"""Checks signed state reads: who is reading, whether the request is fresh, and whether the
namespace's read policy lets them.

:meth:`ReadGuard.check` takes a :class:`~secprivnode.signed_read.SignedRead`, the channel it is
executed on, that channel's MSP and organisations, and the current time, and either returns the
reader's identity or raises:

* :class:`ReadRefused` (not authenticated) with a ``reason``: ``wrong_channel`` (signed for another
  channel), ``stale`` (timestamp outside ±``window_ms`` of the node's clock), ``unknown_identity``,
  ``revoked``, ``expired``, ``bad_signature``, ``replay`` (the same signed request was already
  served within the window);
* :class:`ReadDenied` (authenticated, not allowed): the namespace's read policy is not satisfied;
* :class:`ReplayCacheFull`: too many fresh requests to remember; the caller should retry later.

Read policies are policy expressions (:mod:`secprivnode.contracts.policy`) that the single reader
must satisfy. Namespaces without one use :data:`DEFAULT_READ_POLICY` (a client, admin or authority
of any channel organisation); the channel configuration namespace ``_config`` uses
:data:`CONFIG_READ_POLICY` (any member, nodes included).

Replays are refused by remembering each served request's digest until its timestamp leaves the
acceptance window, after which the timestamp check refuses it instead. The memory is bounded
(:data:`REPLAY_CACHE_MAX`). Time is always given by the caller: this module never reads the clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from crypto.msp import MSP, Expired, Identity, IdentityError, Revoked
from crypto.signing import get_backend
from secprivnode.contracts.policy import Policy, PolicyError, parse
from secprivnode.signed_read import SignedRead
from storage.model import CONFIG_CONTRACT

__all__ = [
    "CONFIG_READ_POLICY",
    "DEFAULT_READ_POLICY",
    "READ_WINDOW_MS",
    "REPLAY_CACHE_MAX",
    "ReadDenied",
    "ReadGuard",
    "ReadRefused",
    "ReplayCache",
    "ReplayCacheFull",
]

# A signed read is accepted within this many milliseconds either side of the node's clock: room for
# ordinary clock skew between a device and a node (NTP keeps them within a second or two) and a slow
# round trip, while keeping the window in which a captured request could be replayed short.
READ_WINDOW_MS = 30_000
# Signed reads remembered for replay detection. Each lives at most 2 * READ_WINDOW_MS (60 s), so
# this allows a sustained ~1000 signed reads per second per node at about 100 bytes per entry;
# beyond it the node answers Overloaded rather than forget a request that could then be replayed.
REPLAY_CACHE_MAX = 65_536
# Parsed read policies kept (namespace policy x channel organisation list): tens of namespaces.
POLICY_CACHE_MAX = 256

DEFAULT_READ_POLICY = "OR(ANY(client), ANY(admin), ANY(authority))"
CONFIG_READ_POLICY = "OR(ANY(node), ANY(client), ANY(admin), ANY(authority))"


class ReadRefused(Exception):
    """The read is not authenticated; ``reason`` is a stable name for clients."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ReadDenied(Exception):
    """The reader is authenticated but the namespace's read policy does not admit them."""


class ReplayCacheFull(Exception):
    """More fresh signed reads than the replay cache can remember."""


class ReplayCache:
    """Digests of served requests with their expiry time (ms), bounded, oldest expiry evicted first."""

    def __init__(self, max_entries: int = REPLAY_CACHE_MAX) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._expiry: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def _evict(self, now_ms: int) -> None:
        while self._heap and self._heap[0][0] < now_ms:
            _, key = heapq.heappop(self._heap)
            self._expiry.pop(key, None)

    def add(self, key: bytes, expires_ms: int, now_ms: int) -> bool:
        """Remember ``key`` until ``expires_ms``; ``False`` if it is already remembered (a replay)."""
        self._evict(now_ms)
        if key in self._expiry:
            return False
        if len(self._expiry) >= self._max:
            raise ReplayCacheFull(f"{self._max} signed reads in the last {2 * READ_WINDOW_MS} ms; retry shortly")
        self._expiry[key] = expires_ms
        heapq.heappush(self._heap, (expires_ms, key))
        return True


class ReadGuard:
    """Authenticates signed reads and applies per-namespace read policies (one per node)."""

    def __init__(
        self,
        policies: Mapping[str, str] | None = None,
        *,
        window_ms: int = READ_WINDOW_MS,
        cache: ReplayCache | None = None,
    ) -> None:
        self._policies = dict(policies or {})
        self._window_ms = window_ms
        self._cache = cache if cache is not None else ReplayCache()
        self._parsed: dict[tuple[str, tuple[str, ...]], Policy] = {}
        for ns, text in self._policies.items():
            try:
                parse(text)
            except PolicyError as exc:
                raise ValueError(f"read policy of {ns!r}: {exc}") from exc

    def policy_text(self, namespace: str) -> str:
        default = CONFIG_READ_POLICY if namespace == CONFIG_CONTRACT else DEFAULT_READ_POLICY
        return self._policies.get(namespace, default)

    def _policy(self, namespace: str, orgs: Sequence[str]) -> Policy:
        text = self.policy_text(namespace)
        key = (text, tuple(orgs))
        policy = self._parsed.get(key)
        if policy is None:
            if len(self._parsed) >= POLICY_CACHE_MAX:
                self._parsed.clear()
            policy = self._parsed[key] = parse(text, orgs)
        return policy

    def authenticate(self, read: SignedRead, channel: str, msp: MSP, now_ms: int) -> Identity:
        """The reader's identity, or :class:`ReadRefused` saying why not."""
        req = read.request
        if req.channel != channel:
            raise ReadRefused("wrong_channel", f"the read was signed for channel {req.channel!r}, not {channel!r}")
        if abs(now_ms - req.timestamp_ms) > self._window_ms:
            raise ReadRefused(
                "stale",
                f"timestamp {req.timestamp_ms} is more than {self._window_ms} ms from the node's clock ({now_ms})",
            )
        try:
            ident = msp.validate(req.creator, now=now_ms // 1000)
        except Revoked as exc:
            raise ReadRefused("revoked", str(exc)) from exc
        except Expired as exc:
            raise ReadRefused("expired", str(exc)) from exc
        except IdentityError as exc:
            raise ReadRefused("unknown_identity", str(exc)) from exc
        d = req.digest()
        if not get_backend().verify(ident.public_key, read.signature, d):
            raise ReadRefused("bad_signature", f"the signature of {ident.id} over the read request is invalid")
        if not self._cache.add(d, req.timestamp_ms + self._window_ms, now_ms):
            raise ReadRefused("replay", "this signed read was already served; sign each read with a fresh nonce")
        return ident

    def authorize(self, ident: Identity, namespace: str, orgs: Sequence[str]) -> None:
        """Raise :class:`ReadDenied` unless ``ident`` satisfies ``namespace``'s read policy."""
        policy = self._policy(namespace, orgs)
        if not policy.evaluate([ident]):
            raise ReadDenied(f"{ident.id} ({ident.role.value}) may not read {namespace!r}: read policy {policy}")

    def check(self, read: SignedRead, channel: str, msp: MSP, orgs: Sequence[str], now_ms: int) -> Identity:
        """Authenticate, then authorise the read of ``read.request.namespace``."""
        ident = self.authenticate(read, channel, msp, now_ms)
        self.authorize(ident, read.request.namespace, orgs)
        return ident
