"""The ``auth`` parameter of signed reads, and what each method asks of the caller's identity.

``auth`` is a JSON object ``{channel, creator, nonce, timestamp_ms, signature}`` (bytes as 0x-hex;
see :mod:`secprivnode.signed_read` for what is signed). :func:`parse_auth` checks its shape;
:func:`signed_read` rebuilds the signed request from the parameters the node is about to execute,
so the signature is checked against the read actually performed, never against client-sent copies.

This module converts and describes; it checks no signature and reads no state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secprivnode.rpc import codec
from secprivnode.signed_read import READ_NONCE_BYTES, SIGNED_READ_PARAMS, ReadRequest, SignedRead

__all__ = [
    "AUTH_FIELDS",
    "IDENTITY_ADMINS",
    "IDENTITY_NONE",
    "IDENTITY_PROPOSAL",
    "IDENTITY_READ",
    "IDENTITY_TEXT",
    "S_AUTH",
    "ParsedAuth",
    "parse_auth",
    "signed_read",
]

# What a method needs from the caller (the OpenRPC document's "x-identity").
IDENTITY_NONE = "none"  # public chain reads
IDENTITY_READ = "signed-read"  # a read request signed by a member (see docs/rpc.md)
IDENTITY_PROPOSAL = "signed-proposal"  # a proposal signed by a member
IDENTITY_ADMINS = "admin-signatures"  # channel admins' signatures over the config update

IDENTITY_TEXT = {
    IDENTITY_NONE: "Open: needs no identity.",
    IDENTITY_READ: (
        "Needs a signed read (auth) by a member whose identity satisfies the namespace's read policy "
        "(default: a client, admin or authority of a channel organisation)."
    ),
    IDENTITY_PROPOSAL: "Needs a proposal signed by a member of the channel.",
    IDENTITY_ADMINS: "Needs signatures of channel admins satisfying the admin policy.",
}

# The fields of ``auth``; an ECDSA P-256 DER signature is at most 72 bytes, a certificate a few KiB.
AUTH_FIELDS = ("channel", "creator", "nonce", "timestamp_ms", "signature")
MAX_CERT_BYTES = 16 * 1024
MAX_SIGNATURE_BYTES = 72
# As the method table's name bound (Fabric's channel-name limit).
MAX_CHANNEL_CHARS = 250

S_AUTH = {
    "type": ["object", "null"],
    "properties": {
        "channel": {"type": "string"},
        "creator": {"type": "string", "pattern": "^0x([0-9a-f]{2})*$"},
        "nonce": {"type": "string", "pattern": f"^0x[0-9a-f]{{{2 * READ_NONCE_BYTES}}}$"},
        "timestamp_ms": {"type": "integer", "minimum": 0},
        "signature": {"type": "string", "pattern": "^0x([0-9a-f]{2})*$"},
    },
    "required": list(AUTH_FIELDS),
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class ParsedAuth:
    channel: str
    creator: bytes
    nonce: bytes
    timestamp_ms: int
    signature: bytes


def _bytes(v: Any, field: str, *, length: int | None = None, max_len: int | None = None) -> bytes:
    try:
        return codec.from_hex(v, field, length=length, max_bytes=max_len)
    except codec.CodecError as exc:
        raise ValueError(str(exc)) from exc


def parse_auth(v: Any) -> ParsedAuth | None:
    """``None`` for an absent ``auth``; else the checked object, or ``ValueError`` naming the field."""
    if v is None:
        return None
    if not isinstance(v, Mapping) or set(v) != set(AUTH_FIELDS):
        raise ValueError(f"expected an object with exactly {', '.join(AUTH_FIELDS)}")
    channel, ts = v["channel"], v["timestamp_ms"]
    if not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL_CHARS:
        raise ValueError("channel: expected a channel name")
    if type(ts) is not int or not 0 <= ts < 2**63:
        raise ValueError("timestamp_ms: expected unix milliseconds")
    return ParsedAuth(
        channel,
        _bytes(v["creator"], "creator", max_len=MAX_CERT_BYTES),
        _bytes(v["nonce"], "nonce", length=READ_NONCE_BYTES),
        ts,
        _bytes(v["signature"], "signature", max_len=MAX_SIGNATURE_BYTES),
    )


def signed_read(method: str, args: Mapping[str, Any], auth: ParsedAuth) -> SignedRead:
    """The signed request for ``method`` executed with the converted ``args``."""
    params = tuple(args[name] for name in SIGNED_READ_PARAMS[method])
    req = ReadRequest(auth.channel, method, params, auth.creator, auth.nonce, auth.timestamp_ms)
    return SignedRead(req, auth.signature)
