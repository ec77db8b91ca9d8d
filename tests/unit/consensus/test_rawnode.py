"""RawNode API: the durability order, typed errors, membership rules, check-quorum, transfer."""

from __future__ import annotations

import random

import pytest
from interaction import Env

from consensus.raft import (
    ConfChange,
    ConfChangeRefused,
    ConfChangeType,
    DurabilityOrderError,
    Entry,
    MemoryStorage,
    Message,
    MsgType,
    NotLeader,
    ProposalDropped,
    ProtocolViolation,
    RaftConfig,
    RawNode,
    Role,
    persist,
)


def cluster(n: int = 3, **kw: str) -> Env:
    env = Env()
    env.verbose = False
    args = " ".join(f"{k.replace('_', '-')}={v}" for k, v in kw.items())
    env.run(f"add-nodes {n} {args}")
    env.run("campaign 1")
    env.run("stabilize")
    assert env.raw("1").role == Role.LEADER
    return env


def test_messages_unavailable_before_persist() -> None:
    st = MemoryStorage()
    node = RawNode(RaftConfig("a", ("a", "b", "c")), st, random.Random(0))
    node.campaign()
    rd = node.ready()
    assert rd.hard_state is not None and rd.must_persist
    with pytest.raises(DurabilityOrderError):
        _ = rd.messages
    with pytest.raises(DurabilityOrderError):
        node.ready()  # a second Ready before advance
    with pytest.raises(DurabilityOrderError):
        node.advance(rd)  # not persisted
    persist(st, rd)
    assert {m.dst for m in rd.messages} == {"b", "c"}
    node.advance(rd)
    assert st.hard_state() == rd.hard_state


def test_single_node_commits_alone() -> None:
    st = MemoryStorage()
    node = RawNode(RaftConfig("solo", ("solo",)), st, random.Random(0))
    node.campaign()
    assert node.role == Role.LEADER
    idx = node.propose(b"block")
    rd = node.ready()
    persist(st, rd)
    assert [e.data for e in rd.committed_entries][-1] == b"block" and rd.committed_entries[-1].index == idx
    node.advance(rd)


def test_not_leader_carries_hint() -> None:
    env = cluster()
    with pytest.raises(NotLeader) as err:
        env.raw("2").propose(b"x")
    assert err.value.leader_hint == "1"
    with pytest.raises(NotLeader):
        env.raw("3").transfer_leadership("2")


def test_proposals_dropped_during_transfer_and_over_limit() -> None:
    env = cluster()
    env.run("partition 1 / 2")  # keep 2 behind so the transfer cannot finish at once
    env.run("propose 1 a")
    env.run("stabilize")
    assert env.raw("1").transfer_leadership("2")
    with pytest.raises(ProposalDropped):
        env.raw("1").propose(b"x")
    # After an election timeout without success the transfer is abandoned.
    env.run("heal")
    env.run("partition 1 / 2")
    for _ in range(10):
        env.run("tick 1")
        env.run("stabilize")
    assert env.raw("1").status().lead_transferee is None
    env.raw("1").propose(b"ok again")

    env2 = cluster(max_uncommitted="10")
    env2.run("partition 1 / 2 3")
    node = env2.raw("1")
    node.propose(b"12345678")  # uncommitted: 8 bytes
    with pytest.raises(ProposalDropped):
        node.propose(b"12345678")


def test_transfer_leadership_is_fast() -> None:
    env = cluster()
    assert env.raw("1").transfer_leadership("3")
    env.run("stabilize")
    assert env.raw("3").role == Role.LEADER and env.raw("1").leader == "3"
    assert not env.raw("3").transfer_leadership("3")  # not another voter
    assert not env.raw("3").transfer_leadership("9")


def test_conf_change_rules() -> None:
    env = cluster()
    lead = env.raw("1")
    env.run("add-nodes 1 voters=1,2,3")  # node 4, not a member yet
    with pytest.raises(ConfChangeRefused, match="not a learner"):
        lead.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, "4"))
    with pytest.raises(ConfChangeRefused, match="already a member"):
        lead.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "2"))
    with pytest.raises(ConfChangeRefused, match="leader cannot remove itself"):
        lead.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "1"))
    lead.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "4"))
    with pytest.raises(ConfChangeRefused, match="pending"):
        lead.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "2"))
    env.run("stabilize")
    assert lead.status().learners == ("4",)
    # The learner received the log (via the leader's snapshot of the bootstrap membership).
    assert env.raw("4").status().commit == lead.status().commit
    assert env.raw("4").status().learners == ("4",)
    # Learners never campaign.
    for _ in range(50):
        env.run("tick 4")
    env.run("stabilize")
    assert env.raw("4").role == Role.FOLLOWER and env.raw("1").role == Role.LEADER
    lead.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, "4"))
    env.run("stabilize")
    assert env.raw("4").status().voters == ("1", "2", "3", "4")
    lead.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "2"))
    env.run("stabilize")
    assert lead.status().voters == ("1", "3", "4")


def test_remove_refused_without_reachable_quorum() -> None:
    env = cluster()
    env.run("crash 3")
    for _ in range(10):
        env.run("tick 1")
        env.run("stabilize")
    lead = env.raw("1")
    assert not lead.status().progress["3"].active and lead.status().progress["2"].active
    with pytest.raises(ConfChangeRefused, match="no quorum"):
        lead.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "2"))
    lead.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "3"))
    env.run("stabilize")
    assert lead.status().voters == ("1", "2")


def test_remove_last_voter_refused() -> None:
    st = MemoryStorage()
    node = RawNode(RaftConfig("solo", ("solo",)), st, random.Random(0))
    node.campaign()
    with pytest.raises(ConfChangeRefused):
        node.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "solo"))


def test_check_quorum_leader_steps_down() -> None:
    env = cluster()
    env.run("partition 1 / 2 3")
    for _ in range(10):
        env.run("tick 1")
        env.run("stabilize 1")
    assert env.raw("1").role == Role.FOLLOWER and env.raw("1").leader is None


def test_lagging_follower_gets_snapshot() -> None:
    env = cluster()
    env.run("crash 3")
    for i in range(5):
        env.run(f"propose 1 b{i}")
    env.run("stabilize 1 2")
    env.run("compact 1 7")
    env.run("restart 3")
    env.run("tick-heartbeat 1")
    env.run("stabilize")
    st3 = env.raw("3").status()
    assert st3.commit == env.raw("1").status().commit
    assert env.nodes["3"].storage.snapshot().index == 7
    assert env.nodes["3"].storage.snapshot().data == b"state@7"


@pytest.mark.parametrize(
    "msg",
    [
        Message(MsgType.APP, "2", "1", term=5, index=3, log_term=2, entries=(Entry(5, 5),)),  # gap
        Message(MsgType.APP, "2", "1", term=5, index=3, log_term=2, entries=(Entry(6, 4),)),  # future term
        Message(MsgType.APP, "2", "1", term=5, index=3, log_term=4, entries=(Entry(3, 4),)),  # term goes back
        Message(MsgType.HEARTBEAT, "2", "1", term=5, entries=(Entry(5, 1),)),
        Message(MsgType.SNAP, "2", "1", term=5),
        Message(MsgType.APP, "1", "1", term=5),
    ],
)
def test_malformed_peer_messages_rejected_without_state_change(msg: Message) -> None:
    env = cluster()
    before = env.raw("1").status()
    with pytest.raises(ProtocolViolation):
        env.raw("1").step(msg)
    assert env.raw("1").status() == before


def test_candidate_removed_mid_campaign_never_leads() -> None:
    """Regression (found by the soak): a node that applies its own removal while campaigning
    must give up, even if voters still grant it votes."""
    env = cluster(pre_vote="false", check_quorum="false")
    env.raw("1").propose_conf_change(ConfChange(ConfChangeType.REMOVE, "3"))
    env.run("process-ready 1")
    env.run("deliver-msgs 2 3")
    env.run("process-ready 2 3")
    env.run("deliver-msgs 1")
    env.run("process-ready 1")  # commits the removal and tells 2 and 3
    env.run("deliver-msgs 3")  # 3 now knows the removal is committed, but has not applied it
    assert env.raw("3").status().commit > env.raw("3").status().applied
    env.run("campaign 3")
    assert env.raw("3").role == Role.CANDIDATE
    env.run("process-ready 3")  # applying the removal ends the campaign
    assert env.raw("3").role == Role.FOLLOWER
    env.run("stabilize")
    assert env.raw("3").role == Role.FOLLOWER
    assert env.raw("1").status().voters == ("1", "2")
