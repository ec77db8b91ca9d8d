"""Deterministic simulation of a Raft cluster: many RawNodes, one thread, virtual time, one seed.

Everything random comes from ``random.Random(seed)``, so a seed replays exactly
(``scripts/sim-soak --seed S``). Faults: message drop, delay, duplication and reordering,
symmetric and one-way partitions, crashes that lose every Ready not yet "synced" to the node's
durable :class:`MemoryStorage`, restarts from it, snapshots with log compaction, and membership
changes (add learner, promote, remove) during all of that.

Checked after every step: the five safety properties of the Raft paper (Figure 3) and the
orderer view (each applied normal entry is a block: the same block at the same position on
every node, none applied twice, applied sequences are prefixes of one another). After the
faults heal, liveness: a leader emerges and a new proposal commits on every voter within a
bound of ticks. A violation raises :class:`SimFailure` carrying the seed and the trace tail.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from consensus.raft import (
    Compacted,
    ConfChange,
    ConfChangeRefused,
    ConfChangeType,
    EntryKind,
    MemoryStorage,
    Message,
    MsgType,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RawNode,
    Ready,
    Role,
    Snapshot,
    Unavailable,
    persist,
)
from crypto.encoding import decode, encode

# Events kept for the failure report: enough to see the last few elections in full.
TRACE_TAIL = 400
ELECTION_TICKS = 10
# Liveness bound after healing: several randomised election rounds plus replication.
LIVENESS_TICKS = 30 * ELECTION_TICKS


# The "churn" aim (see Faults.aim): chance that a leader whose commit index just moved crashes;
# chance per tick that the node down longest restarts; chance that a new leader is stranded.
CHURN_COMMIT_CRASH = 0.9
CHURN_RESTART = 0.3
CHURN_STRAND = 0.5


class SimFailure(AssertionError):
    pass


@dataclass
class App:
    """The durable state of the node's application (a block store): survives crashes."""

    last_applied: int = 0
    blocks: int = 0  # number of normal entries applied (= block height)


@dataclass
class SimNode:
    id: str
    storage: MemoryStorage
    app: App
    member_at_start: bool
    raw: RawNode | None = None
    pending: Ready | None = None
    pending_prev_term: int = 0
    started: bool = False
    seen_leader_terms: set[int] = field(default_factory=set)
    leader_last: dict[int, int] = field(default_factory=dict)
    restart_soon: bool = False  # crashed by an aimed fault: restart within a tick or two
    last_commit: int = 0  # the commit index it last persisted

    @property
    def up(self) -> bool:
        return self.raw is not None


@dataclass(frozen=True)
class Faults:
    drop: float
    dup: float
    max_delay: int
    crash: float
    partition: float
    conf: float
    snap: float
    churn: float  # probability per tick that a random node starts an election on its own
    sync: float  # probability a pending Ready is synced in a given round
    # Node configuration varies too: tiny messages and windows exercise flow control and make
    # a new leader's old-term entries reach followers before its own (Figure 8).
    max_size_per_msg: int
    max_inflight: int
    pre_vote: bool
    check_quorum: bool
    # A schedule aimed at one class of bug, on top of the random faults above:
    #   "churn"  strand each new leader with at most one follower for a few ticks and crash it,
    #            crash a leader just after its commit index moves, and restart crashed nodes in
    #            the order they went down: a new term's entries stay on a minority, a deposed
    #            leader returns before its successor, and old-term entries reach a majority under
    #            a later leader (the paper's Figure 8 sequence);
    #   "votes"  start two elections in the same tick and crash a node right after it sent a
    #            granted vote, restarting it at once: what a node must remember of its vote;
    #   ""       none.
    aim: str = ""

    @classmethod
    def pick(cls, rng: random.Random, aim: str | None = None) -> Faults:
        chosen = rng.choice(["", "churn", "votes"])
        aim = chosen if aim is None else aim
        if aim == "churn":
            # Partial replication: small messages and windows, some loss; no lease to hold
            # elections back.
            return cls(
                drop=rng.choice([0.1, 0.25]),
                dup=0.0,
                max_delay=rng.choice([1, 2, 4]),
                crash=0.0,
                partition=rng.choice([0.0, 0.05]),
                conf=rng.choice([0.02, 0.05]),
                snap=rng.choice([0.0, 0.05]),
                churn=rng.choice([0.05, 0.2]),
                sync=rng.choice([1.0, 0.7]),
                max_size_per_msg=1,
                max_inflight=rng.choice([1, 2]),
                pre_vote=rng.random() < 0.3,
                check_quorum=False,
                aim=aim,
            )
        if aim == "votes":
            return cls(
                drop=rng.choice([0.0, 0.1]),
                dup=rng.choice([0.0, 0.05]),
                max_delay=rng.choice([0, 1, 2]),
                crash=0.0,
                partition=0.0,
                conf=rng.choice([0.02, 0.05]),
                snap=0.0,
                churn=0.0,
                sync=1.0,
                max_size_per_msg=1 << 20,
                max_inflight=256,
                pre_vote=False,
                check_quorum=False,
                aim=aim,
            )
        return cls(
            drop=rng.choice([0.0, 0.02, 0.1, 0.25]),
            dup=rng.choice([0.0, 0.05, 0.15]),
            max_delay=rng.choice([0, 1, 2, 4]),
            crash=rng.choice([0.0, 0.01, 0.03]),
            partition=rng.choice([0.0, 0.02, 0.05]),
            conf=rng.choice([0.0, 0.02, 0.05]),
            snap=rng.choice([0.0, 0.05, 0.2]),
            churn=rng.choice([0.0, 0.05, 0.2]),
            sync=rng.choice([1.0, 0.7, 0.4]),
            max_size_per_msg=rng.choice([1 << 20, 64, 1]),
            max_inflight=rng.choice([256, 2]),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
        )


class Sim:
    def __init__(
        self, seed: int, n_nodes: int = 3, fault_ticks: int = 120, extra_nodes: int = 2, aim: str | None = None
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0
        self.faults = Faults.pick(self.rng, aim)
        self.fault_ticks = fault_ticks
        self.initial = tuple(f"n{i}" for i in range(1, n_nodes + 1))
        spare = tuple(f"n{i}" for i in range(n_nodes + 1, n_nodes + 1 + extra_nodes))
        self.nodes: dict[str, SimNode] = {}
        for nid in self.initial + spare:
            self.nodes[nid] = SimNode(nid, MemoryStorage(), App(), nid in self.initial)
        for nid in self.initial:
            self._start(nid)
        self.down_order: list[str] = []  # crashed nodes, first down first
        self.crash_at: dict[str, int] = {}  # stranded leaders and the tick they crash at
        self.net: list[tuple[int, int, Message]] = []
        self.seq = 0
        self.blocked: set[tuple[str, str]] = set()  # (src, dst) pairs that cannot communicate
        self.trace: deque[tuple[int, str, Any]] = deque(maxlen=TRACE_TAIL)
        self.proposals = 0
        # Global views for the safety checks.
        self.leader_of_term: dict[int, str] = {}
        self.entry_reg: dict[tuple[int, int], tuple[int, bytes, int]] = {}  # (i, t) -> (kind, data, prev term)
        self.applied_at: dict[int, tuple[int, int, bytes]] = {}  # i -> (term, kind, data)
        self.chain: list[tuple[int, bytes]] = []  # the blocks, in order, as first applied anywhere
        self.max_committed = (0, 0)
        self.stats: dict[str, int] = {
            "refused": 0,
            "dropped": 0,
            "crashes": 0,
            "snapshots": 0,
            "conf": 0,
            "restores": 0,
            "lost_readies": 0,
        }

    # ------------------------------------------------------------------------ lifecycle
    def _start(self, nid: str) -> None:
        node = self.nodes[nid]
        voters = self.initial if node.member_at_start else ()
        f = self.faults
        cfg = RaftConfig(
            nid,
            voters,
            election_ticks=ELECTION_TICKS,
            applied=node.app.last_applied,
            max_size_per_msg=f.max_size_per_msg,
            max_inflight_msgs=f.max_inflight,
            pre_vote=f.pre_vote,
            check_quorum=f.check_quorum,
        )
        node.raw = RawNode(cfg, node.storage, random.Random(self.rng.getrandbits(64)))
        node.started = True
        if node.raw.startup_snapshot is not None:
            self._restore(node, node.raw.startup_snapshot)
        node.pending = None

    def _crash(self, nid: str, *, soon: bool = False) -> None:
        node = self.nodes[nid]
        node.raw = None
        node.restart_soon = soon
        self.down_order.append(nid)
        if node.pending is not None and node.pending.must_persist:
            self.stats["lost_readies"] += 1
        node.pending = None  # never synced: lost, and none of its messages left
        self.stats["crashes"] += 1
        self._log("crash", nid)

    def _log(self, kind: str, obj: Any) -> None:
        self.trace.append((self.now, kind, obj))

    def fail(self, why: str) -> SimFailure:
        lines = [f"seed={self.seed} t={self.now} {why}", f"faults={self.faults}"]
        lines += [f"  t={t} {k} {o}" for t, k, o in self.trace]
        return SimFailure("\n".join(lines))

    # -------------------------------------------------------------------------- network
    def _send(self, msgs: tuple[Message, ...]) -> None:
        f = self.faults
        for m in msgs:
            # Round-trip through the wire form, as the real transport does.
            m = Message.from_wire(decode(encode(m.to_wire())))
            copies = 1
            if self.now < self.fault_ticks:
                if self.rng.random() < f.drop:
                    copies = 0
                elif self.rng.random() < f.dup:
                    copies = 2
            for _ in range(copies):
                delay = self.rng.randint(0, f.max_delay) if self.now < self.fault_ticks else 0
                self.seq += 1
                self.net.append((self.now + delay, self.seq, m))

    def _deliver_due(self) -> None:
        due = [x for x in self.net if x[0] <= self.now]
        if not due:
            return
        self.net = [x for x in self.net if x[0] > self.now]
        self.rng.shuffle(due)  # reordering
        for _, _, m in due:
            dst = self.nodes.get(m.dst)
            if dst is None or dst.raw is None or (m.src, m.dst) in self.blocked:
                continue
            self._log("recv", m)
            dst.raw.step(m)

    # ---------------------------------------------------------------------- ready cycle
    def _take_ready(self, node: SimNode) -> None:
        assert node.raw is not None
        if node.pending is None and node.raw.has_ready():
            rd = node.raw.ready()
            node.pending = rd
            if rd.entries:
                node.pending_prev_term = node.raw._r.log.term_or_zero(rd.entries[0].index - 1)

    def _sync(self, node: SimNode) -> None:
        rd, raw = node.pending, node.raw
        assert rd is not None and raw is not None
        node.pending = None
        self._check_new_entries(node, rd)
        persist(node.storage, rd)
        last_commit = node.last_commit
        if rd.hard_state is not None:
            node.last_commit = rd.hard_state.commit
        if rd.hard_state is not None and rd.hard_state.commit > self.max_committed[0]:
            c = rd.hard_state.commit
            self.max_committed = (c, raw._r.log.term_or_zero(c) or node.storage.term(c))
        dies_unheard = (
            self.faults.aim == "churn"
            and self.now < self.fault_ticks
            and rd.hard_state is not None
            and raw.role == Role.LEADER
            and rd.hard_state.commit > last_commit
            and self.rng.random() < CHURN_COMMIT_CRASH
        )
        if not dies_unheard:
            self._send(rd.messages)
        if rd.snapshot is not None:
            self._restore(node, rd.snapshot)
        self._apply(node, rd)
        if dies_unheard:
            # The leader committed and applied, then died before telling anyone, and stays down
            # a while: its successor must still hold what it committed (Leader Completeness).
            self._crash(node.id)
            return
        raw.advance(rd)
        if (
            self.faults.aim == "votes"
            and self.now < self.fault_ticks
            and any(m.type == MsgType.VOTE_RESP and not m.reject for m in rd.messages)
            and self.rng.random() < 0.5
        ):
            self._crash(node.id, soon=True)  # the granted vote is on its way; the voter dies

    def _check_new_entries(self, node: SimNode, rd: Ready) -> None:
        # Log Matching (Figure 3), checked inductively: an entry (index, term) is the same
        # everywhere — same payload and same predecessor term — which by induction makes any
        # two logs that share an entry identical up to it.
        prev = node.pending_prev_term
        for e in rd.entries:
            rec = (int(e.kind), e.data, prev)
            old = self.entry_reg.setdefault((e.index, e.term), rec)
            if old != rec:
                raise self.fail(f"Log Matching: {node.id} has {e} (prev term {prev}), another has {old}")
            prev = e.term
        if rd.snapshot is not None:
            s = rd.snapshot
            a = self.applied_at.get(s.index)
            if a is not None and a[0] != s.term:
                raise self.fail(f"snapshot {s.term}/{s.index} contradicts applied entry {a}")

    def _restore(self, node: SimNode, snap: Snapshot) -> None:
        """The application installs a snapshot: in the orderer it would fetch the blocks."""
        if snap.data == b"":
            last, blocks = 1, 0  # bootstrap snapshot
        else:
            last, blocks = decode(snap.data)
        if last != snap.index:
            raise self.fail(f"snapshot data for {last} at index {snap.index}")
        if blocks > len(self.chain) or (blocks and self.chain[blocks - 1][0] > snap.index):
            raise self.fail(f"{node.id} restored a snapshot with {blocks} blocks; chain has {len(self.chain)}")
        if snap.index < node.app.last_applied or blocks < node.app.blocks:
            raise self.fail(f"{node.id} snapshot {snap.index} would roll back applied {node.app.last_applied}")
        node.app.last_applied, node.app.blocks = snap.index, blocks
        if snap.data:
            self.stats["restores"] += 1
        self._log("restore", f"{node.id} snap={snap.term}/{snap.index} blocks={blocks}")

    def _apply(self, node: SimNode, rd: Ready) -> None:
        app = node.app
        for e in rd.committed_entries:
            # Exactly once, in order: the application sees every index once, with no gap.
            if e.index != app.last_applied + 1:
                raise self.fail(f"{node.id} applies {e.index} after {app.last_applied}")
            # State Machine Safety (Figure 3): no two servers apply different entries at an index.
            rec = (e.term, int(e.kind), e.data)
            old = self.applied_at.setdefault(e.index, rec)
            if old != rec:
                raise self.fail(f"State Machine Safety: {node.id} applies {rec} at {e.index}, another {old}")
            app.last_applied = e.index
            if e.kind == EntryKind.NORMAL:
                blk = (e.index, e.data)
                if app.blocks < len(self.chain):
                    if self.chain[app.blocks] != blk:
                        raise self.fail(
                            f"orderer: {node.id} block {app.blocks} is {blk}, others {self.chain[app.blocks]}"
                        )
                else:
                    self.chain.append(blk)
                app.blocks += 1
            self._log("apply", f"{node.id} {e.term}/{e.index} {e.kind.name} {e.data[:24]!r}")

    # --------------------------------------------------------------------- safety checks
    def _check_roles(self) -> None:
        for node in self.nodes.values():
            raw = node.raw
            if raw is None:
                continue
            r = raw._r
            if r.role != Role.LEADER:
                continue
            # Election Safety: at most one leader per term.
            prior = self.leader_of_term.setdefault(r.term, node.id)
            if prior != node.id:
                raise self.fail(f"Election Safety: {prior} and {node.id} both lead term {r.term}")
            last = r.log.last_index()
            if r.term not in node.seen_leader_terms:
                node.seen_leader_terms.add(r.term)
                if self.faults.aim == "churn" and self.now < self.fault_ticks:
                    self._strand(node)
                self._log("leader", f"{node.id} term={r.term} last={last}")
                self._check_completeness(node)
            # Leader Append-Only: a leader's log never shrinks (it never overwrites or deletes).
            if last < node.leader_last.get(r.term, 0):
                raise self.fail(f"Leader Append-Only: {node.id} log shrank to {last} in term {r.term}")
            node.leader_last[r.term] = last

    def _check_completeness(self, node: SimNode) -> None:
        # Leader Completeness: every entry committed before this election is in the new leader's log.
        c, t = self.max_committed
        if c == 0:
            return
        assert node.raw is not None
        log = node.raw._r.log
        try:
            have = log.term(c)
        except Compacted:
            return  # covered by the leader's snapshot, checked against applied entries on restore
        except Unavailable:
            raise self.fail(f"Leader Completeness: {node.id} leads without committed entry {t}/{c}") from None
        if have != t:
            raise self.fail(f"Leader Completeness: {node.id} has term {have} at committed index {c}, not {t}")

    # -------------------------------------------------------------------------- faults
    def _maybe_faults(self) -> None:
        f, rng = self.faults, self.rng
        for nid, at in list(self.crash_at.items()):
            if at <= self.now:
                del self.crash_at[nid]
                self.blocked.clear()
                if self.nodes[nid].up:
                    self._crash(nid)
        if f.aim == "churn":
            # Crashed nodes come back in the order they went down, the one down longest first:
            # the deposed leader of an earlier term returns before the one that replaced it, as
            # in the paper's Figure 8 sequence.
            if self.down_order and rng.random() < CHURN_RESTART:
                nid = self.down_order.pop(0)
                if not self.nodes[nid].up:
                    self._start(nid)
                    self._log("restart", nid)
        else:
            for nid, node in self.nodes.items():
                if not node.up and node.started and rng.random() < (0.7 if node.restart_soon else 0.1):
                    self._start(nid)
                    self._log("restart", nid)
        if f.aim == "votes" and rng.random() < 0.15:
            # Two elections at once from the same term: one of them must lose every contested vote.
            for nid in rng.sample(sorted(self.nodes), 2):
                node = self.nodes[nid]
                if node.raw is not None:
                    node.raw.campaign()
                    self._log("campaign", nid)
        if rng.random() < f.partition:
            self._partition()
        elif self.blocked and rng.random() < 0.05:
            self.blocked.clear()
            self._log("heal", "")
        if rng.random() < f.churn:
            node = self.nodes[rng.choice(list(self.nodes))]
            if node.raw is not None:
                node.raw.campaign()
                self._log("campaign", node.id)
        if rng.random() < f.conf:
            self._conf_change()
        if rng.random() < f.snap:
            self._snapshot(rng.choice(list(self.nodes)))

    def _maybe_crash(self) -> None:
        # Called between Ready handling rounds, so a node may die holding a Ready it has not
        # synced yet: that state and its messages are lost.
        f, rng = self.faults, self.rng
        if f.aim == "churn":
            return  # its crashes are aimed (stranded leaders, leaders that just committed)
        if rng.random() < f.crash / 3:
            # Leaders are the interesting victims (Figure 8 needs leaders to fail mid-replication).
            lead = self.leader()
            holding = [n for n, node in self.nodes.items() if node.pending is not None]
            pick = rng.random()
            if lead is not None and pick < 0.4:
                nid = lead.id
            elif holding and pick < 0.8:
                nid = rng.choice(holding)
            else:
                nid = rng.choice(list(self.nodes))
            if self.nodes[nid].up:
                self._crash(nid)

    def _strand(self, lead: SimNode) -> None:
        """Aimed at Figure 8: a new leader reaches at most one follower for a tick or three, then
        crashes, so its new term's entries are on a minority when the next election starts."""
        if self.rng.random() >= CHURN_STRAND:
            return
        others = [n for n in self.nodes if n != lead.id]
        keep = self.rng.choice([*others, None])
        cut = [n for n in others if n != keep]
        self.blocked = {(lead.id, n) for n in cut} | {(n, lead.id) for n in cut}
        self.crash_at[lead.id] = self.now + self.rng.randint(1, 3)
        self._log("strand", f"{lead.id} reaches only {keep}")

    def _partition(self) -> None:
        ids = list(self.nodes)
        self.rng.shuffle(ids)
        lead = self.leader()
        if lead is not None and self.rng.random() < 0.5:
            # Isolate the leader with at most a minority, leaving it with uncommitted entries.
            ids.remove(lead.id)
            ids.insert(0, lead.id)
            cut = self.rng.randint(1, max(1, len(ids) // 2))
        else:
            cut = self.rng.randint(1, len(ids) - 1)
        a, b = ids[:cut], ids[cut:]
        one_way = self.rng.random() < 0.3
        self.blocked = {(x, y) for x in a for y in b}
        if not one_way:
            self.blocked |= {(y, x) for x in a for y in b}
        self._log("partition", f"{sorted(a)} {'->x' if one_way else '/'} {sorted(b)}")

    def leader(self) -> SimNode | None:
        best = None
        for node in self.nodes.values():
            if (
                node.raw is not None
                and node.raw._r.role == Role.LEADER
                and (
                    best is None or node.raw._r.term > best.raw._r.term  # type: ignore[union-attr]
                )
            ):
                best = node
        return best

    def _conf_change(self) -> None:
        lead = self.leader()
        if lead is None or lead.raw is None:
            return
        r = lead.raw._r
        choices = []
        for nid, node in self.nodes.items():
            if nid in r.learners:
                choices += [ConfChange(ConfChangeType.PROMOTE, nid), ConfChange(ConfChangeType.REMOVE, nid)]
            elif nid in r.voters:
                choices.append(ConfChange(ConfChangeType.REMOVE, nid))
            elif not node.started:
                choices.append(ConfChange(ConfChangeType.ADD_LEARNER, nid))
        cc = self.rng.choice(choices)
        if cc.kind == ConfChangeType.REMOVE and len(r.voters) <= 3 and cc.node_id in r.voters:
            return  # keep at least three voters so the liveness phase has a quorum
        try:
            idx = lead.raw.propose_conf_change(cc)
        except ConfChangeRefused:
            self.stats["refused"] += 1
            return
        self.stats["conf"] += 1
        self._log("conf", f"{lead.id} proposes {cc.kind.name}({cc.node_id}) at {idx}")
        if cc.kind == ConfChangeType.ADD_LEARNER:
            self._start(cc.node_id)

    def _snapshot(self, nid: str) -> None:
        node = self.nodes[nid]
        if node.raw is None or node.pending is not None:
            return
        i = node.app.last_applied
        if i <= node.storage.snapshot().index:
            return
        data = encode((i, node.app.blocks))
        node.storage.create_snapshot(i, node.raw.conf_state_at(i), data)
        keep = self.rng.choice([0, 0, 1, 5])
        if i - keep > node.storage.first_index() - 1:
            node.storage.compact(i - keep)
        self.stats["snapshots"] += 1
        self._log("snapshot", f"{nid} at {i} (kept {keep})")

    # ----------------------------------------------------------------------------- loop
    def _propose(self, tag: str) -> None:
        lead = self.leader()
        if lead is None or lead.raw is None:
            return
        self.proposals += 1
        data = f"{tag}-{self.seed}-{self.proposals}".encode()
        try:
            lead.raw.propose(data)
            self._log("propose", f"{lead.id} {data!r}")
        except (NotLeader, ProposalDropped):
            self.stats["dropped"] += 1

    def step(self) -> None:
        """One tick of virtual time."""
        self.now += 1
        if self.now < self.fault_ticks:
            self._maybe_faults()
            if self.rng.random() < (0.6 if self.faults.aim == "churn" else 0.3):
                self._propose("p")
        for node in self.nodes.values():
            if node.raw is not None:
                node.raw.tick()
        for _ in range(3):
            self._deliver_due()
            for node in self.nodes.values():
                if node.raw is None:
                    continue
                self._take_ready(node)
                if node.pending is not None and (self.now >= self.fault_ticks or self.rng.random() < self.faults.sync):
                    self._sync(node)
                    if node.raw is not None:  # an aimed fault may have crashed it
                        self._take_ready(node)
            self._check_roles()
            if self.now < self.fault_ticks:
                self._maybe_crash()

    def heal(self) -> None:
        self.blocked.clear()
        for nid, node in self.nodes.items():
            if not node.up and node.started:
                self._start(nid)
        self._log("heal-all", "")

    def run(self) -> None:
        try:
            while self.now < self.fault_ticks:
                self.step()
            self.heal()
            self.check_liveness()
            self.check_final_logs()
        except SimFailure:
            raise
        except Exception as exc:  # a crash of the core is a failure of this seed: report it so
            raise self.fail(f"exception: {exc!r}") from exc

    def check_liveness(self) -> None:
        start = self.now
        marker: bytes | None = None
        while self.now - start < LIVENESS_TICKS:
            self.step()
            lead = self.leader()
            if lead is None or lead.raw is None:
                continue
            if marker is None or (self.now - start) % (3 * ELECTION_TICKS) == 0:
                try:
                    marker = f"live-{self.seed}-{self.now}".encode()
                    lead.raw.propose(marker)
                except (NotLeader, ProposalDropped):
                    marker = None
                    continue
            voters = lead.raw._r.voters
            if all(self._applied_marker(v, marker) for v in voters):
                return
        raise self.fail(f"liveness: no proposal committed on all voters within {LIVENESS_TICKS} ticks of healing")

    def _applied_marker(self, nid: str, marker: bytes) -> bool:
        for i in range(len(self.chain) - 1, -1, -1):
            if self.chain[i][1] == marker:
                return self.nodes[nid].app.blocks > i
        return False

    def check_final_logs(self) -> None:
        """Full pairwise Log Matching on the final logs (the per-step check is inductive)."""
        logs: dict[str, dict[int, int]] = {}
        for nid, node in self.nodes.items():
            if node.raw is None:
                continue
            log = node.raw._r.log
            first = log.first_index()
            logs[nid] = {e.index: e.term for e in log.slice(first, log.last_index() + 1)}
        ids = sorted(logs)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                la, lb = logs[a], logs[b]
                common = [k for k in la if k in lb and la[k] == lb[k]]
                if not common:
                    continue
                top = max(common)
                for k in range(max(min(la), min(lb)), top + 1):
                    if la.get(k) != lb.get(k):
                        raise self.fail(f"Log Matching: {a} and {b} agree at {top} but differ at {k}")


def run_seed(seed: int, n_nodes: int = 3, fault_ticks: int = 120, aim: str | None = None) -> Sim:
    sim = Sim(seed, n_nodes=n_nodes, fault_ticks=fault_ticks, aim=aim)
    sim.run()
    return sim
