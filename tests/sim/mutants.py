"""Planted bugs of the Raft core, to measure what the simulator catches (a mutation score).

Each :class:`Mutant` rewrites one line of one method of the real core (its source, as
``inspect`` reads it) and installs the rewritten method for the duration of a ``with`` block. A
mutant whose original line is no longer in the source fails loudly, so the set follows the code.
The bugs are the classic ones of Raft implementations: each breaks a safety property the paper
proves (Figure 3) under some interleaving, and the simulator must find that interleaving within
a bounded number of seeds (``tests/sim/test_mutants.py``; ``scripts/sim-soak --mutants`` prints
the table of seeds needed).
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from consensus.raft.log import RaftLog
from consensus.raft.raft import Raft

__all__ = ["MUTANTS", "Mutant"]


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str  # the bug, in words
    owner: type
    method: str
    old: str
    new: str

    def _patched(self) -> Callable[..., Any]:
        src = textwrap.dedent(inspect.getsource(getattr(self.owner, self.method)))
        if src.count(self.old) != 1:
            raise AssertionError(
                f"mutant {self.name}: {self.old!r} is not (once) in {self.owner.__name__}.{self.method}"
            )
        namespace = dict(vars(sys.modules[self.owner.__module__]))
        exec(compile(src.replace(self.old, self.new), f"<mutant {self.name}>", "exec"), namespace)
        fn: Callable[..., Any] = namespace[self.method]
        return fn

    @contextmanager
    def applied(self) -> Iterator[None]:
        original = self.owner.__dict__[self.method]
        setattr(self.owner, self.method, self._patched())
        try:
            yield
        finally:
            setattr(self.owner, self.method, original)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "double-vote",
        "a node grants its vote to a second candidate in the same term (§5.2)",
        Raft,
        "_handle_vote_request",
        "self.vote == m.src\n",
        "self.vote == m.src or m.type == MsgType.VOTE\n",
    ),
    Mutant(
        "vote-not-persisted",
        "the vote is not part of the durable hard state, so a restarted node votes again (Figure 2)",
        Raft,
        "hard_state",
        "HardState(self.term, self.vote, self.log.committed)",
        "HardState(self.term, NONE, self.log.committed)",
    ),
    Mutant(
        "figure-8",
        "the leader commits an entry of an earlier term by counting replicas (§5.4.2, Figure 8)",
        RaftLog,
        "maybe_commit",
        "self.term_or_zero(max_index) == term",
        "self.term_or_zero(max_index) > 0",
    ),
    Mutant(
        "keep-conflicting-suffix",
        "a follower keeps entries that conflict with the leader's instead of truncating (§5.3)",
        RaftLog,
        "maybe_append",
        "self.append(ents[ci - index - 1 :])",
        "self.append([e for e in ents[ci - index - 1 :] if e.index > self.last_index()])",
    ),
    Mutant(
        "minority-quorum",
        "the commit index is the one a minority holds (off by one in the quorum, §5.3)",
        Raft,
        "_maybe_commit",
        "quorum_index(self.voters, match)",
        "sorted(match.values(), reverse=True)[max(0, len(self.voters) // 2 - 1)] if match else 0",
    ),
    Mutant(
        "stale-term-accepted",
        "messages of an older term are handled instead of ignored (§5.1)",
        Raft,
        "step",
        "        return\n    if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):",
        "        pass\n    if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):",
    ),
)
