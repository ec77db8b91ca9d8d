"""Typed error codes of node-to-node answers (``secprivnode.wire``)."""

from __future__ import annotations

import pytest

from consensus.orderer.errors import DuplicateTransaction, InvalidTransaction, OrdererError, OrdererStopped, PoolFull
from consensus.raft import NotLeader, ProposalDropped
from crypto.encoding import decode, encode
from secprivnode import wire
from secprivnode.pipeline.errors import RejectCode
from secprivnode.wire import ErrorCode, RemoteRefusal


def refusal(answer: object) -> RemoteRefusal:
    with pytest.raises(RemoteRefusal) as ei:
        wire.unpack_answer(answer)
    return ei.value


def test_codes_travel_as_integers_and_come_back_typed() -> None:
    frame = decode(encode(wire.err(ErrorCode.POOL_FULL, "pool is full")))
    assert list(frame) == ["err", 14, "pool is full"]
    r = refusal(frame)
    assert r.code is ErrorCode.POOL_FULL and r.message == "pool is full"
    assert wire.unpack_answer(decode(encode(wire.ok(b"id", 3)))) == (b"id", 3)


def test_codes_are_stable() -> None:
    # Peers of other versions rely on these numbers: they may be added to, never changed.
    assert {c.name: c.value for c in ErrorCode} == {
        "UNKNOWN": 0,
        "PROTOCOL": 1,
        "BAD_REQUEST": 2,
        "UNKNOWN_CHANNEL": 3,
        "CHANNEL_HALTED": 4,
        "UNAVAILABLE": 5,
        "NOT_FOUND": 6,
        "TOO_LARGE": 7,
        "BUSY": 8,
        "NOT_ORDERER": 10,
        "NOT_LEADER": 11,
        "PROPOSAL_DROPPED": 12,
        "ORDERER_STOPPED": 13,
        "POOL_FULL": 14,
        "DUPLICATE_TX": 15,
        "INVALID_TX": 16,
        "BAD_PROPOSAL": 20,
        "BAD_CHANNEL": 21,
        "NOT_READY": 22,
        "UNKNOWN_IDENTITY": 23,
        "EXPIRED_IDENTITY": 24,
        "REVOKED_IDENTITY": 25,
        "BAD_SIGNATURE": 26,
        "DUPLICATE_TXID": 27,
        "UNKNOWN_CONTRACT": 28,
        "UNAUTHORIZED": 29,
        "CONTRACT_ERROR": 30,
    }


@pytest.mark.parametrize("reject", list(RejectCode))
def test_every_endorsement_refusal_has_a_code_and_back(reject: RejectCode) -> None:
    r = refusal(wire.err(wire.reject_code(reject), "no"))
    assert wire.rejection_of(r.code) is reject


@pytest.mark.parametrize(
    ("legacy", "code"),
    [
        ("NotLeader", ErrorCode.NOT_LEADER),
        ("NotOrderer", ErrorCode.NOT_ORDERER),
        ("ProposalDropped", ErrorCode.PROPOSAL_DROPPED),
        ("OrdererStopped", ErrorCode.ORDERER_STOPPED),
        ("PoolFull", ErrorCode.POOL_FULL),
        ("DuplicateTransaction", ErrorCode.DUPLICATE_TX),
        ("InvalidTransaction", ErrorCode.INVALID_TX),
        ("BadRequest", ErrorCode.BAD_REQUEST),
        ("NotFound", ErrorCode.NOT_FOUND),
        ("TooLarge", ErrorCode.TOO_LARGE),
        ("Overloaded", ErrorCode.BUSY),
        ("Unauthorized", ErrorCode.UNAUTHORIZED),
        ("protocol", ErrorCode.PROTOCOL),
        ("contract_error", ErrorCode.CONTRACT_ERROR),
        ("revoked_identity", ErrorCode.REVOKED_IDENTITY),
        ("SomethingNew", ErrorCode.UNKNOWN),
    ],
)
def test_earlier_versions_string_kinds_keep_their_meaning(legacy: str, code: ErrorCode) -> None:
    assert refusal(["err", legacy, "m"]).code is code


def test_unknown_integer_code_is_a_refusal_not_a_crash() -> None:
    r = refusal(["err", 9999, "from a newer peer"])
    assert r.code is ErrorCode.UNKNOWN and r.message == "from a newer peer"


@pytest.mark.parametrize(
    "answer", [None, [], ["err"], ["err", 1], ["err", 1, b"bytes"], ["err", True, "m"], ["err", 1.5, "m"], ["maybe"]]
)
def test_malformed_answers_are_protocol_refusals(answer: object) -> None:
    assert refusal(answer).code is ErrorCode.PROTOCOL


@pytest.mark.parametrize(
    ("exc", "code", "back"),
    [
        (NotLeader("n1"), ErrorCode.NOT_LEADER, NotLeader),
        (ProposalDropped("transfer"), ErrorCode.PROPOSAL_DROPPED, ProposalDropped),
        (OrdererStopped("stopping"), ErrorCode.ORDERER_STOPPED, OrdererStopped),
        (PoolFull("full"), ErrorCode.POOL_FULL, PoolFull),
        (DuplicateTransaction(b"\x01" * 32), ErrorCode.DUPLICATE_TX, InvalidTransaction),
        (InvalidTransaction("bad_signature", "creator"), ErrorCode.INVALID_TX, InvalidTransaction),
    ],
)
def test_ordering_refusals_map_to_codes_and_back(exc: Exception, code: ErrorCode, back: type[Exception]) -> None:
    assert wire.ordering_code(exc) is code
    typed = wire.ordering_exception(refusal(wire.err(code, str(exc))))
    assert isinstance(typed, back)
    if code is ErrorCode.DUPLICATE_TX:
        assert isinstance(typed, OrdererError) and typed.reason == "duplicate"


def test_other_refusals_stay_remote_refusals() -> None:
    r = refusal(wire.err(ErrorCode.NOT_ORDERER, "not an orderer"))
    assert wire.ordering_exception(r) is r
    assert wire.ordering_code(ValueError("x")) is None
