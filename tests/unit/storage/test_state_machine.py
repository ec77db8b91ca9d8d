"""Model-based test: world state and history against a plain dict model.

Hypothesis drives commits (puts, deletes, invalid transactions, duplicates), range scans and
close/reopen cycles of the database; after every step the ledger must agree with the model.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import Transaction, ValidationCode
from storage.testing import Chain, TestKeys

KEYS = ["", "a", "a\x00", "ab", "b", "bb", "z", "ž"]
NAMESPACES = ["kv", "kv2"]
KEYSET = TestKeys.generate(random.Random(5))

write_st = st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(max_size=8)))
tx_st = st.tuples(
    st.sampled_from(NAMESPACES),
    st.lists(write_st, max_size=4),
    st.sampled_from([ValidationCode.VALID] * 3 + [ValidationCode.MVCC_READ_CONFLICT]),
)
HistModel = dict[tuple[str, str], list[tuple[tuple[int, int], bytes, bytes | None]]]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-sm-"))
        self.db = Database(self.dir / "ledger")
        self.ledger = ChannelLedger(self.db, "city")
        self.chain = Chain("city", KEYSET, seed=3)
        self.state: dict[tuple[str, str], tuple[bytes, tuple[int, int]]] = {}
        self.history: HistModel = {}
        self.committed: list[Transaction] = []

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(txs=st.lists(tx_st, max_size=4), replay=st.booleans())
    def commit(self, txs: list[tuple[str, list[tuple[str, bytes | None]], ValidationCode]], replay: bool) -> None:
        n = self.ledger.height
        block_txs = [self.chain.tx(writes, ns=ns) for ns, writes, _ in txs]
        codes = [code for _, _, code in txs]
        if replay and self.committed:  # a replayed tx is marked as a duplicate by the validator
            block_txs.append(self.committed[-1])
            codes.append(ValidationCode.DUPLICATE_TXID)
        self.chain.commit(self.ledger, block_txs, codes)
        for i, (tx, code) in enumerate(zip(block_txs, codes, strict=True)):
            if code != ValidationCode.VALID:
                continue
            self.committed.append(tx)
            for w in tx.rwset.writes:
                k, value = (tx.rwset.namespace, w.key), w.value
                hist = self.history.setdefault(k, [])
                if hist and hist[-1][0] == (n, i):
                    hist.pop()  # the last write of a key in one tx is the one recorded
                hist.append(((n, i), tx.tx_id, value))
                if value is None:
                    self.state.pop(k, None)
                else:
                    self.state[k] = (value, (n, i))

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = Database(self.dir / "ledger", create=False)
        height, tip = self.ledger.height, self.ledger.tip_hash
        self.ledger = ChannelLedger(self.db, "city")
        assert (self.ledger.height, self.ledger.tip_hash) == (height, tip)

    @rule(
        ns=st.sampled_from(NAMESPACES),
        start=st.sampled_from(KEYS),
        end=st.sampled_from(KEYS),
        limit=st.integers(0, 5),
    )
    def range_scan(self, ns: str, start: str, end: str, limit: int) -> None:
        expect = sorted(
            (k, v, ver) for (n, k), (v, ver) in self.state.items() if n == ns and k >= start and (end == "" or k < end)
        )
        assert self.ledger.get_range(ns, start, end) == expect
        assert self.ledger.get_range(ns, start, end, limit) == expect[:limit]

    @precondition(lambda self: self.ledger.height > 0)
    @rule()
    def verify(self) -> None:
        self.ledger.verify_chain(self.chain.builder.resolver)

    @invariant()
    def state_matches(self) -> None:
        for ns in NAMESPACES:
            for key in KEYS:
                got = self.ledger.get_state(ns, key)
                assert got == self.state.get((ns, key))
                assert self.ledger.get_version(ns, key) == (None if got is None else got[1])

    @invariant()
    def history_matches(self) -> None:
        for (ns, key), entries in self.history.items():
            got = self.ledger.get_history(ns, key)
            assert [(e.version, e.tx_id, e.value, e.is_delete) for e in got] == [
                (ver, txid, value, value is None) for ver, txid, value in entries
            ]

    @invariant()
    def committed_txs_are_indexed(self) -> None:
        for tx in self.committed[-3:]:
            loc = self.ledger.tx_location(tx.tx_id)
            assert loc is not None and loc[2] == ValidationCode.VALID


LedgerMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=20, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
