"""A small interpreter for scripted Raft transcripts (in the manner of etcd-io/raft's
datadriven ``testdata/*.txt``).

A transcript is a sequence of blocks::

    command arg arg key=value
    ----
    expected output (one or more lines; "ok" when there is none)
    <blank line>

Lines starting with ``#`` between blocks are comments. Node ids are the strings ``"1"``, ``"2"``…
Messages are held in one network queue until ``deliver-msgs``; ``process-ready`` persists a
node's Ready (always synced), queues its messages and applies its committed entries.

Commands: ``add-nodes N [voters=1,2,3] [pre-vote=true] [check-quorum=true] [max-size=B]
[max-uncommitted=B] [election=10]``, ``set-log ID term=T [commit=C] t1 t2 …`` (replace a node's durable log with
entries of those terms at indices 1…), ``campaign ID``, ``tick ID [n]``, ``tick-election ID``,
``tick-heartbeat ID``, ``process-ready ID…``, ``deliver-msgs [ID…] [drop=true]``,
``drop-msgs from=A to=B``, ``stabilize [ID…]``, ``propose ID data``, ``propose-conf-change ID
add-learner|promote|remove N``, ``transfer-leadership ID to``, ``compact ID index``,
``partition A… / B…`` (``/>`` for one-way), ``heal``, ``crash ID``, ``restart ID``,
``status ID``, ``raft-log ID``, ``roles``, ``election-timeouts``, ``tick-all n``,
``log-level none|info``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from consensus.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    MemoryStorage,
    Message,
    RaftConfig,
    RaftError,
    RawNode,
    Ready,
    Role,
    Snapshot,
    persist,
)
from consensus.raft.types import _entry_str


@dataclass
class Block:
    line_no: int
    command: str
    expected: list[str]


def parse(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != "----":
            raise ValueError(f"line {i + 1}: command without '----': {line!r}")
        j = i + 2
        out: list[str] = []
        while j < len(lines) and lines[j].strip() != "":
            out.append(lines[j].rstrip())
            j += 1
        blocks.append(Block(i + 1, line, out))
        i = j
    return blocks


def render(blocks: list[Block], outputs: list[list[str]], text: str) -> str:
    """The transcript with its expected outputs replaced (comments are kept)."""
    lines = text.splitlines()
    res: list[str] = []
    i = 0
    bi = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            res.append(lines[i].rstrip())
            i += 1
            continue
        res += [line, "----", *outputs[bi]]
        bi += 1
        i += 2
        while i < len(lines) and lines[i].strip() != "":
            i += 1
        res.append("")
        while i < len(lines) and lines[i].strip() == "":
            i += 1
    return "\n".join(res).rstrip("\n") + "\n"


@dataclass
class Node:
    id: str
    cfg: RaftConfig
    storage: MemoryStorage
    raw: RawNode | None
    applied: list[Entry] = field(default_factory=list)


class Env:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.queue: list[Message] = []
        self.blocked: set[tuple[str, str]] = set()
        self.verbose = True
        self.out: list[str] = []

    # ------------------------------------------------------------------------- helpers
    def emit(self, line: str) -> None:
        self.out.append(line)

    def say(self, line: str) -> None:
        if self.verbose:
            self.out.append(line)

    def raw(self, nid: str) -> RawNode:
        raw = self.nodes[nid].raw
        if raw is None:
            raise ValueError(f"node {nid} is down")
        return raw

    def _new_raw(self, node: Node) -> RawNode:
        # Each node's randomness is seeded by its id, so transcripts are reproducible.
        return RawNode(node.cfg, node.storage, random.Random(int(node.id)))

    # ------------------------------------------------------------------------ commands
    def run(self, cmd: str) -> list[str]:
        self.out = []
        words = cmd.split()
        name, args = words[0], words[1:]
        pos = [a for a in args if "=" not in a]
        kw = dict(a.split("=", 1) for a in args if "=" in a)
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        try:
            handler(pos, kw)
        except RaftError as exc:
            self.emit(f"error: {type(exc).__name__}: {exc}")
        return self.out or ["ok"]

    def cmd_log_level(self, pos: list[str], kw: dict[str, str]) -> None:
        self.verbose = pos[0] != "none"

    def cmd_add_nodes(self, pos: list[str], kw: dict[str, str]) -> None:
        n = int(pos[0])
        first = len(self.nodes) + 1
        ids = [str(i) for i in range(first, first + n)]
        voters = tuple(kw["voters"].split(",")) if "voters" in kw else tuple(ids)
        for nid in ids:
            cfg = RaftConfig(
                nid,
                voters if nid in voters else (),
                election_ticks=int(kw.get("election", "10")),
                pre_vote=kw.get("pre-vote", "true") == "true",
                check_quorum=kw.get("check-quorum", "true") == "true",
                max_size_per_msg=int(kw.get("max-size", str(1 << 20))),
                max_uncommitted_bytes=int(kw.get("max-uncommitted", str(64 << 20))),
            )
            node = Node(nid, cfg, MemoryStorage(), None)
            node.raw = self._new_raw(node)
            self.nodes[nid] = node
        self.emit(f"added {','.join(ids)} voters={','.join(voters)}")

    def cmd_set_log(self, pos: list[str], kw: dict[str, str]) -> None:
        """Give node ``pos[0]`` a durable log with the given entry terms (a fresh restart)."""
        node = self.nodes[pos[0]]
        st = MemoryStorage()
        voters = node.cfg.initial_voters
        # Membership as a snapshot at index 0, so that the log itself starts at index 1 exactly
        # as in the paper's figures.
        st._snap = Snapshot(0, 0, ConfState(voters, ()), b"")
        ents = [Entry(int(t), i + 1, EntryKind.NORMAL, b"") for i, t in enumerate(pos[1:])]
        st.save(HardState(int(kw["term"]), "", int(kw.get("commit", "0"))), ents, None)
        node.storage = st
        node.raw = self._new_raw(node)
        node.applied = []
        self.emit(self._log_line(node.id))

    def cmd_campaign(self, pos: list[str], kw: dict[str, str]) -> None:
        self.raw(pos[0]).campaign()

    def _tick(self, nid: str, n: int) -> None:
        for _ in range(n):
            self.raw(nid).tick()

    def cmd_tick(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in pos[:1]:
            self._tick(nid, int(pos[1]) if len(pos) > 1 else 1)

    def cmd_tick_election(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in pos:
            self._tick(nid, self.nodes[nid].cfg.election_ticks)

    def cmd_tick_heartbeat(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in pos:
            self._tick(nid, self.nodes[nid].cfg.heartbeat_ticks)

    def cmd_tick_all(self, pos: list[str], kw: dict[str, str]) -> None:
        """Tick every live node once, then stabilize; repeat n times (virtual time passing)."""
        for t in range(1, int(pos[0]) + 1):
            mark = len(self.out)
            for node in self.nodes.values():
                if node.raw is not None:
                    node.raw.tick()
            self._stabilize(list(self.nodes))
            if len(self.out) > mark:
                self.out.insert(mark, f"tick {t}:")

    def cmd_election_timeouts(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid, node in self.nodes.items():
            if node.raw is not None:
                r = node.raw._r
                self.emit(f"{nid}: elapsed={r.election_elapsed} timeout={r.randomized_election_timeout}")

    def cmd_process_ready(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in pos:
            self._process_ready(nid)

    def _process_ready(self, nid: str) -> bool:
        node = self.nodes[nid]
        if node.raw is None or not node.raw.has_ready():
            return False
        rd = node.raw.ready()
        persist(node.storage, rd)
        self._print_ready(nid, rd)
        # Messages across a partition, or to a node that is down, are lost at once.
        for m in rd.messages:
            dst = self.nodes.get(m.dst)
            if (m.src, m.dst) in self.blocked or dst is None or dst.raw is None:
                self.say(f"  dropped: {m}")
            else:
                self.queue.append(m)
        node.applied.extend(rd.committed_entries)
        node.raw.advance(rd)
        return True

    def _print_ready(self, nid: str, rd: Ready) -> None:
        self.say(f"> {nid} handling Ready")
        if rd.soft_state is not None:
            self.say(f"  soft: role={rd.soft_state.role.name} leader={rd.soft_state.leader}")
        if rd.hard_state is not None:
            hs = rd.hard_state
            self.say(f"  hard: term={hs.term} vote={hs.vote or '-'} commit={hs.commit}")
        if rd.snapshot is not None:
            s = rd.snapshot
            self.say(f"  snapshot: {s.term}/{s.index} voters={','.join(s.conf_state.voters)}")
        if rd.entries:
            self.say("  entries: " + " | ".join(_entry_str(e) for e in rd.entries))
        if rd.committed_entries:
            self.say("  committed: " + " | ".join(_entry_str(e) for e in rd.committed_entries))
        for m in rd.messages:
            self.say(f"  send: {m}")

    def cmd_deliver_msgs(self, pos: list[str], kw: dict[str, str]) -> None:
        self._deliver(pos or list(self.nodes), drop=kw.get("drop") == "true")

    def _deliver(self, ids: list[str], drop: bool = False) -> bool:
        take = [m for m in self.queue if m.dst in ids]
        self.queue = [m for m in self.queue if m.dst not in ids]
        for m in take:
            node = self.nodes[m.dst]
            if drop or (m.src, m.dst) in self.blocked or node.raw is None:
                self.say(f"  dropped: {m}")
                continue
            self.say(f"  {m}")
            node.raw.step(m)
        return bool(take)

    def cmd_drop_msgs(self, pos: list[str], kw: dict[str, str]) -> None:
        keep = []
        for m in self.queue:
            if m.src == kw.get("from", m.src) and m.dst == kw.get("to", m.dst):
                self.say(f"  dropped: {m}")
            else:
                keep.append(m)
        self.queue = keep

    def cmd_stabilize(self, pos: list[str], kw: dict[str, str]) -> None:
        self._stabilize(pos or list(self.nodes))

    def _stabilize(self, ids: list[str]) -> None:
        # Bounded: a transcript that does not settle is a bug in the transcript or the core.
        for _ in range(1000):
            busy = False
            for nid in ids:
                busy |= self._process_ready(nid)
            busy |= self._deliver(ids)
            if not busy:
                return
        raise AssertionError("stabilize did not settle")

    def cmd_propose(self, pos: list[str], kw: dict[str, str]) -> None:
        idx = self.raw(pos[0]).propose(pos[1].encode())
        self.emit(f"index {idx}")

    def cmd_propose_conf_change(self, pos: list[str], kw: dict[str, str]) -> None:
        kind = {"add-learner": ConfChangeType.ADD_LEARNER, "promote": ConfChangeType.PROMOTE}.get(
            pos[1], ConfChangeType.REMOVE
        )
        idx = self.raw(pos[0]).propose_conf_change(ConfChange(kind, pos[2]))
        self.emit(f"index {idx}")

    def cmd_transfer_leadership(self, pos: list[str], kw: dict[str, str]) -> None:
        self.emit(f"started: {self.raw(pos[0]).transfer_leadership(pos[1])}")

    def cmd_compact(self, pos: list[str], kw: dict[str, str]) -> None:
        node = self.nodes[pos[0]]
        i = int(pos[1])
        node.storage.create_snapshot(i, self.raw(pos[0]).conf_state_at(i), f"state@{i}".encode())
        node.storage.compact(i)
        self.emit(self._log_line(pos[0]))

    def cmd_partition(self, pos: list[str], kw: dict[str, str]) -> None:
        sep = "/>" if "/>" in pos else "/"
        cut = pos.index(sep)
        a, b = pos[:cut], pos[cut + 1 :]
        self.blocked = {(x, y) for x in a for y in b}
        if sep == "/":
            self.blocked |= {(y, x) for x in a for y in b}

    def cmd_heal(self, pos: list[str], kw: dict[str, str]) -> None:
        self.blocked = set()

    def cmd_crash(self, pos: list[str], kw: dict[str, str]) -> None:
        # Volatile state is lost; messages already queued for it are lost with its connections.
        self.nodes[pos[0]].raw = None
        self.queue = [m for m in self.queue if m.dst != pos[0]]

    def cmd_restart(self, pos: list[str], kw: dict[str, str]) -> None:
        node = self.nodes[pos[0]]
        node.raw = self._new_raw(node)

    def cmd_status(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in pos:
            s = self.raw(nid).status()
            self.emit(
                f"{nid}: {s.role.name} term={s.term} vote={s.vote or '-'} leader={s.leader} commit={s.commit} "
                f"applied={s.applied} last={s.last_index} voters={','.join(s.voters)} "
                f"learners={','.join(s.learners) or '-'}"
            )
            for peer, p in s.progress.items():
                learner = " learner" if p.is_learner else ""
                self.emit(f"  {peer}: {p.state.name} match={p.match} next={p.next}{learner}")

    def _log_line(self, nid: str) -> str:
        log = self.raw(nid)._r.log
        first = log.first_index()
        ents = log.slice(first, log.last_index() + 1)
        body = " ".join(f"{e.term}/{e.index}" for e in ents) or "(empty)"
        return f"{nid}: first={first} commit={log.committed} log: {body}"

    def cmd_raft_log(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid in pos:
            self.emit(self._log_line(nid))

    def cmd_roles(self, pos: list[str], kw: dict[str, str]) -> None:
        for nid, node in self.nodes.items():
            if node.raw is None:
                self.emit(f"{nid}: down")
            else:
                s = node.raw.status()
                lead = " (leader)" if s.role == Role.LEADER else ""
                self.emit(f"{nid}: {s.role.name} term={s.term}{lead}")


def run_transcript(path: Path) -> tuple[str, str]:
    """Return (expected text, actual text) for a transcript file."""
    text = path.read_text()
    blocks = parse(text)
    env = Env()
    outputs = [env.run(b.command) for b in blocks]
    return text, render(blocks, outputs, text)
