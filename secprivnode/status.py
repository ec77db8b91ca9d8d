"""Status documents of a running node, in the shapes ``docs/rpc.md`` documents.

Formatting only: the functions here turn typed status values into JSON-ready dicts and never
read or change node state themselves.
"""

from __future__ import annotations

from typing import Any

from consensus.raft import Status

__all__ = ["raft_status_json"]


def raft_status_json(st: Status | None) -> dict[str, Any]:
    """``raft_status``'s result: the driver's status, or the "not an orderer" document for None."""
    if st is None:
        return {
            "leader": None,
            "term": 0,
            "role": "none",
            "commit": 0,
            "applied": 0,
            "voters": [],
            "learners": [],
            "orderer": False,
        }
    return {
        "id": st.id,
        "leader": st.leader,
        "term": st.term,
        "role": st.role.name.lower(),
        "commit": st.commit,
        "applied": st.applied,
        "last_index": st.last_index,
        "voters": list(st.voters),
        "learners": list(st.learners),
        "orderer": True,
        "progress": {
            k: {"match": p.match, "next": p.next, "state": p.state.name.lower()} for k, p in st.progress.items()
        },
    }
