"""The Raft protocol state machine (Ongaro & Ousterhout 2014; Ongaro's thesis 2014).

Sans-I/O: inputs are ``tick()``, ``step(msg)`` and local requests (propose, conf change,
transfer); outputs accumulate in ``msgs`` and in the log's unstable part, and the
:class:`~consensus.raft.core.RawNode` hands them to the application as a ``Ready``.

Implemented: leader election with randomised timeouts (§5.2), pre-vote (thesis §9.6),
check-quorum with leader lease (thesis §6.2, §9.6), log replication with fast backtracking
(§5.3), the current-term commit rule (§5.4.2, Figure 8), leadership transfer (thesis §3.10),
one-server-at-a-time membership changes (thesis §4.1) and snapshots (§7).

This module must never read the clock, touch sockets or disk, or use module-level ``random``:
the only randomness is the injected ``random.Random``.
"""

from __future__ import annotations

import random

from consensus.raft.config import RaftConfig
from consensus.raft.log import RaftLog
from consensus.raft.storage import Storage
from consensus.raft.tracker import Inflights, Progress, ProgressState, VoteResult, quorum_index, vote_result
from consensus.raft.types import (
    NONE,
    Compacted,
    ConfChange,
    ConfChangeRefused,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    NotLeader,
    ProposalDropped,
    Role,
    Snapshot,
    Unavailable,
)

__all__ = ["Raft"]

# Membership versions remembered for snapshots at past indices. Changes are rare and the
# application snapshots at (or just before) its applied index, so a short history suffices.
CONF_HISTORY_MAX = 64

_VOTE_RESP = {MsgType.VOTE: MsgType.VOTE_RESP, MsgType.PRE_VOTE: MsgType.PRE_VOTE_RESP}


class Raft:
    def __init__(self, config: RaftConfig, storage: Storage, rng: random.Random) -> None:
        self.cfg = config
        self.id = config.id
        self.rng = rng
        self.log = RaftLog(storage)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.voters: tuple[str, ...] = ()
        self.learners: tuple[str, ...] = ()
        self.prs: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.msgs: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_ticks
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.uncommitted_bytes = 0
        # Index of the newest conf-change entry (or snapshot) reflected in voters/learners.
        self.conf_applied = 0
        # (index, membership from that index on), oldest first, for snapshots at past indices.
        self.conf_history: list[tuple[int, ConfState]] = []

    # ------------------------------------------------------------------------------ state
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def load_state(self, hs: HardState) -> None:
        assert self.log.committed <= hs.commit <= self.log.last_index() or hs.commit == 0, (
            f"commit {hs.commit} outside [{self.log.committed}, {self.log.last_index()}]"
        )
        self.log.commit_to(hs.commit)
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self) -> bool:
        return self.id in self.voters

    def conf_state(self) -> ConfState:
        return ConfState(self.voters, self.learners)

    def conf_state_at(self, index: int) -> ConfState:
        """Membership in force after applying entry ``index``; raises Compacted if forgotten."""
        found = None
        for i, cs in self.conf_history:
            if i <= index:
                found = cs
        if found is None:
            raise Compacted(f"membership at index {index} is no longer known")
        return found

    def set_conf(self, cs: ConfState) -> None:
        self.voters = tuple(sorted(cs.voters))
        self.learners = tuple(sorted(cs.learners))
        members = set(self.voters) | set(self.learners)
        for gone in set(self.prs) - members:
            del self.prs[gone]
        last = self.log.last_index()
        for n in sorted(members):  # sorted: message order must not depend on hash seeds
            if n not in self.prs:
                self.prs[n] = self._new_progress(n, last)
            self.prs[n].is_learner = n in self.learners

    def _new_progress(self, n: str, last: int) -> Progress:
        pr = Progress(match=0, next=last + 1, inflights=Inflights(self.cfg.max_inflight_msgs))
        # Peers count as unheard-from until they answer; ourselves always as heard.
        pr.inactive_ticks = 0 if n == self.id else self.cfg.election_ticks
        if n == self.id:
            pr.match = last
        return pr

    # ---------------------------------------------------------------------- role changes
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.rng.randrange(self.cfg.election_ticks, 2 * self.cfg.election_ticks)
        self.lead_transferee = NONE
        self.votes = {}
        self.pending_conf_index = 0
        self.uncommitted_bytes = 0
        last = self.log.last_index()
        for n in list(self.prs):
            learner = self.prs[n].is_learner
            self.prs[n] = self._new_progress(n, last)
            self.prs[n].is_learner = learner

    def become_follower(self, term: int, lead: str) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become pre-candidate"
        # Pre-vote does not change term or vote (thesis §9.6).
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role == Role.CANDIDATE, "only a candidate becomes leader"
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.prs[self.id].become_replicate()
        # Conservatively treat any unapplied entry as a pending conf change, so that no new one
        # is proposed before everything in our log that might be a conf change is applied.
        self.pending_conf_index = self.log.last_index()
        # A new leader commits entries of previous terms only by committing one of its own
        # term (§5.4.2, §8): append an empty entry.
        self._append_entries([Entry(0, 0, EntryKind.EMPTY)])

    # ------------------------------------------------------------------------------- ticks
    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup()

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        for n, pr in self.prs.items():
            if n != self.id:
                pr.inactive_ticks += 1
                if pr.state == ProgressState.SNAPSHOT:
                    pr.snapshot_wait_ticks += 1
                    # The InstallSnapshot or its answer may have been lost: probe again.
                    if pr.snapshot_wait_ticks >= 2 * self.cfg.election_ticks:
                        pr.become_probe()
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                # Thesis §6.2: a leader that cannot reach a quorum within an election timeout
                # steps down, so clients can find the real leader.
                self.become_follower(self.term, NONE)
                return
            self.lead_transferee = NONE  # a transfer that did not finish in time is aborted
        if self.role == Role.LEADER and self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def is_active(self, n: str) -> bool:
        pr = self.prs.get(n)
        return n == self.id or (pr is not None and pr.inactive_ticks < self.cfg.election_ticks)

    def _quorum_active(self) -> bool:
        active = sum(1 for v in self.voters if self.is_active(v))
        return active >= len(self.voters) // 2 + 1

    # --------------------------------------------------------------------------- elections
    def hup(self, transfer: bool = False) -> None:
        if self.role == Role.LEADER or not self.promotable():
            return
        if self.cfg.pre_vote and not transfer:
            self._campaign(MsgType.PRE_VOTE, transfer)
        else:
            self._campaign(MsgType.VOTE, transfer)

    def _campaign(self, kind: MsgType, transfer: bool) -> None:
        if kind == MsgType.PRE_VOTE:
            self._become_pre_candidate()
            term = self.term + 1  # the term we would campaign in; ours is unchanged
        else:
            self._become_candidate()
            term = self.term
        self.votes[self.id] = True
        if self._tally() == VoteResult.WON:
            # Single-voter cluster.
            if kind == MsgType.PRE_VOTE:
                self._campaign(MsgType.VOTE, transfer)
            else:
                self._become_leader()
            return
        for v in self.voters:
            if v != self.id:
                self._send(
                    Message(
                        kind,
                        self.id,
                        v,
                        term=term,
                        log_term=self.log.last_term(),
                        index=self.log.last_index(),
                        force=transfer,
                    )
                )

    def _tally(self) -> VoteResult:
        return vote_result(self.voters, self.votes)

    # ------------------------------------------------------------------------------ step
    def step(self, m: Message) -> None:
        if m.dst != self.id or m.src == self.id:
            return
        if m.term > self.term:
            if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
                in_lease = (
                    self.cfg.check_quorum and self.lead != NONE and self.election_elapsed < self.cfg.election_ticks
                )
                if in_lease and not m.force:
                    # Leader lease (thesis §9.6 / §4.2.3): we heard from a live leader within the
                    # minimum election timeout, so a disruptive candidate is ignored.
                    return
            if m.type == MsgType.PRE_VOTE or (m.type == MsgType.PRE_VOTE_RESP and not m.reject):
                pass  # pre-vote never changes our term; a granted pre-vote is at our term+1
            elif m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
                self.become_follower(m.term, m.src)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (MsgType.HEARTBEAT, MsgType.APP):
                # A stale leader (e.g. back from a partition): tell it our term so it steps down.
                # Without this, with pre-vote it might never learn it was deposed.
                self._send(Message(MsgType.APP_RESP, self.id, m.src))
            elif m.type == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, self.id, m.src, term=self.term, reject=True))
            return
        if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _handle_vote_request(self, m: Message) -> None:
        # Raft paper §5.2/§5.4.1; a pre-vote is granted without recording anything.
        # A node answers even if its own (possibly stale) configuration makes it a learner: the
        # candidate may know it was promoted already. Learners' votes never count, because a
        # candidate tallies only the voters of its own configuration (vote_result), and a
        # candidate only asks its voters.
        can_vote = (
            self.vote == m.src
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == MsgType.PRE_VOTE and m.term > self.term)
        )
        resp = _VOTE_RESP[m.type]
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp, self.id, m.src, term=m.term))
            if m.type == MsgType.VOTE:
                self.election_elapsed = 0
                self.vote = m.src
        else:
            self._send(Message(resp, self.id, m.src, term=self.term, reject=True))

    def _step_candidate(self, m: Message) -> None:
        my_resp = MsgType.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MsgType.VOTE_RESP
        if m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            # Another server established itself as leader of this term (§5.2).
            self.become_follower(m.term, m.src)
            self._step_follower(m)
        elif m.type == my_resp:
            assert self.promotable(), "a non-voter is campaigning"
            self.votes.setdefault(m.src, not m.reject)
            res = self._tally()
            if res == VoteResult.WON:
                if self.role == Role.PRE_CANDIDATE:
                    self._campaign(MsgType.VOTE, False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif res == VoteResult.LOST:
                self.become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        if m.type == MsgType.APP:
            self.election_elapsed = 0
            self.lead = m.src
            self._handle_append(m)
        elif m.type == MsgType.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.src
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self._send(Message(MsgType.HEARTBEAT_RESP, self.id, m.src))
        elif m.type == MsgType.SNAP:
            self.election_elapsed = 0
            self.lead = m.src
            self._handle_snapshot(m)
        elif m.type == MsgType.TIMEOUT_NOW:
            # Leadership transfer (thesis §3.10): start an election now, skipping pre-vote and
            # overriding the lease of the other followers.
            self.hup(transfer=True)

    # ------------------------------------------------------------------- follower handlers
    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(Message(MsgType.APP_RESP, self.id, m.src, index=self.log.committed))
            return
        last = self.log.maybe_append(m.index, m.log_term, m.commit, list(m.entries))
        if last is not None:
            self._send(Message(MsgType.APP_RESP, self.id, m.src, index=last))
            return
        # Reject with a hint (§5.3, "fast backtracking"): the largest index ≤ the probed one whose
        # term is ≤ the probed term, so the leader can skip a whole conflicting term at once.
        hint, hint_term = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        self._send(
            Message(MsgType.APP_RESP, self.id, m.src, index=m.index, reject=True, reject_hint=hint, log_term=hint_term)
        )

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self.restore(m.snapshot):
            self._send(Message(MsgType.APP_RESP, self.id, m.src, index=self.log.last_index()))
        else:
            self._send(Message(MsgType.APP_RESP, self.id, m.src, index=self.log.committed))

    def restore(self, s: Snapshot) -> bool:
        if s.index <= self.log.committed:
            return False
        if self.log.match_term(s.index, s.term):
            # We already have the snapshot's last entry: just fast-forward the commit index.
            self.log.commit_to(s.index)
            return False
        self.log.restore(s)
        self.set_conf(s.conf_state)
        self.conf_applied = s.index
        self.conf_history = [(s.index, self.conf_state())]
        return True

    # --------------------------------------------------------------------- leader handlers
    def _step_leader(self, m: Message) -> None:
        pr = self.prs.get(m.src)
        if pr is None:
            return  # not (any longer) a member
        pr.inactive_ticks = 0
        if m.type == MsgType.APP_RESP:
            self._handle_append_resp(m, pr)
        elif m.type == MsgType.HEARTBEAT_RESP:
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                # The appends filling the window may all have been lost: free one slot so the
                # next append goes out; a gap makes the follower reject and we probe back.
                pr.inflights.free_first()
            if pr.match < self.log.last_index():
                self._send_append(m.src)

    def _handle_append_resp(self, m: Message, pr: Progress) -> None:
        if m.reject:
            probe = m.reject_hint
            if m.log_term > 0:
                probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.src)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT:
            if pr.match + 1 >= self.log.first_index():
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._bcast_append()
        elif was_paused:
            self._send_append(m.src)
        # Pipelining: fill the window while there is something to send (etcd's maybeSendAppend loop).
        while self._send_append(m.src, send_if_empty=False):
            pass
        if m.src == self.lead_transferee and pr.match == self.log.last_index():
            self._send(Message(MsgType.TIMEOUT_NOW, self.id, m.src))

    def _maybe_commit(self) -> bool:
        match = {v: self.prs[v].match for v in self.voters if v in self.prs}
        return self.log.maybe_commit(quorum_index(self.voters, match), self.term)

    # ---------------------------------------------------------------------------- sending
    def _send(self, m: Message) -> None:
        if m.type not in (MsgType.VOTE, MsgType.PRE_VOTE, MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
            assert m.term == 0, "only vote messages carry an explicit term"
            m = Message(
                m.type,
                m.src,
                m.dst,
                self.term,
                m.log_term,
                m.index,
                m.entries,
                m.commit,
                m.reject,
                m.reject_hint,
                m.snapshot,
                m.force,
            )
        self.msgs.append(m)

    def _send_append(self, to: str, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        try:
            log_term = self.log.term(prev)
            ents = self.log.entries_from(pr.next, self.cfg.max_size_per_msg) if pr.next <= self.log.last_index() else []
        except Compacted:
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._send(
            Message(
                MsgType.APP, self.id, to, log_term=log_term, index=prev, entries=tuple(ents), commit=self.log.committed
            )
        )
        pr.sent_entries(ents[-1].index if ents else prev, len(ents))
        return True

    def _send_snapshot(self, to: str, pr: Progress) -> bool:
        try:
            snap = self.log.snapshot()
        except Unavailable:
            return False  # the application is producing one; retry on the next heartbeat
        assert not snap.is_empty(), "compacted log without a snapshot"
        pr.become_snapshot(snap.index)
        self._send(Message(MsgType.SNAP, self.id, to, snapshot=snap))
        return True

    def _bcast_append(self) -> None:
        for n in self.prs:
            if n != self.id:
                self._send_append(n)

    def _bcast_heartbeat(self) -> None:
        for n, pr in self.prs.items():
            if n != self.id:
                # Never tell a follower to commit beyond what it is known to hold.
                self._send(Message(MsgType.HEARTBEAT, self.id, n, commit=min(pr.match, self.log.committed)))

    def _append_entries(self, ents: list[Entry]) -> int:
        li = self.log.last_index()
        ents = [Entry(self.term, li + 1 + i, e.kind, e.data) for i, e in enumerate(ents)]
        last = self.log.append(ents)
        self.prs[self.id].maybe_update(last)
        self._maybe_commit()
        return last

    # ------------------------------------------------------------------ local requests
    def _require_leader(self) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.lead or None)

    def propose(self, data: bytes, kind: EntryKind = EntryKind.NORMAL) -> int:
        self._require_leader()
        if self.lead_transferee != NONE:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")
        size = len(data)
        if self.uncommitted_bytes > 0 and self.uncommitted_bytes + size > self.cfg.max_uncommitted_bytes:
            raise ProposalDropped(f"{self.uncommitted_bytes} uncommitted bytes: limit reached")
        self.uncommitted_bytes += size
        index = self._append_entries([Entry(0, 0, kind, data)])
        self._bcast_append()
        return index

    def propose_conf_change(self, cc: ConfChange) -> int:
        self._require_leader()
        self._check_conf_change(cc)
        index = self.propose(cc.encode(), EntryKind.CONF_CHANGE)
        self.pending_conf_index = index
        return index

    def _check_conf_change(self, cc: ConfChange) -> None:
        if self.pending_conf_index > self.log.applied:
            raise ConfChangeRefused("another configuration change is pending (one at a time, thesis §4.1)")
        n = cc.node_id
        majority = lambda vs: len(vs) // 2 + 1  # noqa: E731
        if cc.kind == ConfChangeType.ADD_LEARNER:
            if n in self.voters or n in self.learners:
                raise ConfChangeRefused(f"{n} is already a member")
            return
        if cc.kind == ConfChangeType.PROMOTE:
            if n not in self.learners:
                raise ConfChangeRefused(f"{n} is not a learner")
            pr = self.prs[n]
            if pr.state != ProgressState.REPLICATE or not self.is_active(n):
                # Thesis §4.2.1: a new server must catch up before it counts towards a quorum,
                # or the cluster may be unavailable while it does.
                raise ConfChangeRefused(f"learner {n} has not caught up with the leader's log yet")
            new_voters = (*self.voters, n)
        else:
            if n not in self.voters and n not in self.learners:
                raise ConfChangeRefused(f"{n} is not a member")
            if n in self.learners:
                return
            if n == self.id:
                raise ConfChangeRefused("the leader cannot remove itself: transfer leadership first")
            new_voters = tuple(v for v in self.voters if v != n)
            if not new_voters:
                raise ConfChangeRefused("cannot remove the last voter")
        active = sum(1 for v in new_voters if self.is_active(v))
        if active < majority(new_voters):
            raise ConfChangeRefused(
                f"only {active} of {len(new_voters)} voters of the new configuration are reachable: no quorum"
            )

    def apply_conf_change(self, index: int, cc: ConfChange) -> None:
        """Apply a committed conf-change entry (once, in log order)."""
        if index <= self.conf_applied:
            return
        self.conf_applied = index
        voters, learners = set(self.voters), set(self.learners)
        n = cc.node_id
        if cc.kind == ConfChangeType.ADD_LEARNER:
            if n not in voters:
                learners.add(n)
        elif cc.kind == ConfChangeType.PROMOTE:
            if n in learners:
                learners.discard(n)
                voters.add(n)
        else:
            voters.discard(n)
            learners.discard(n)
        if not voters:
            return  # never leave a configuration without voters; refused at proposal time
        self.set_conf(ConfState(tuple(voters), tuple(learners)))
        self.conf_history.append((index, self.conf_state()))
        del self.conf_history[:-CONF_HISTORY_MAX]
        if self.role != Role.FOLLOWER and not self.promotable():
            # Removed (or demoted) while leading or campaigning: a non-voter must not lead.
            self.become_follower(self.term, NONE)
            return
        if self.role == Role.LEADER:
            if self.lead_transferee not in self.prs:
                self.lead_transferee = NONE
            # The quorum changed: commit may advance; new members need the log.
            self._maybe_commit()
            self._bcast_append()

    def transfer_leadership(self, to: str) -> bool:
        self._require_leader()
        if to == self.id or to not in self.voters:
            return False
        if self.lead_transferee == to:
            return True
        self.lead_transferee = to
        # The transfer must finish within one election timeout, else it is aborted (thesis §3.10).
        self.election_elapsed = 0
        if self.prs[to].match == self.log.last_index():
            self._send(Message(MsgType.TIMEOUT_NOW, self.id, to))
        else:
            self._send_append(to)
        return True

    def reduce_uncommitted(self, ents: list[Entry]) -> None:
        if self.role == Role.LEADER:
            size = sum(len(e.data) for e in ents)
            self.uncommitted_bytes = max(0, self.uncommitted_bytes - size)
