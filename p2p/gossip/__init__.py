"""Gossip: membership, block dissemination, state transfer and private-data dissemination.

:class:`~p2p.gossip.core.GossipCore` is the sans-I/O protocol (messages and ticks in, actions
out); :class:`~p2p.gossip.service.GossipService` runs it over a :class:`~p2p.api.PeerTransport`.
"""
