"""Peer-to-peer layer: how nodes find, authenticate and talk to each other.

* :mod:`p2p.messages`, :mod:`p2p.framing`, :mod:`p2p.connection`, :mod:`p2p.handshake`: the wire
  protocol, sans-I/O (bytes in, events out).
* :mod:`p2p.transport`: asyncio TCP with mutual TLS 1.3 (contexts in :mod:`p2p.tls`);
  :mod:`p2p.memory`: the same interface in-process, for simulations; :mod:`p2p.api`: that interface.
* :mod:`p2p.verify`: checks of blocks received from peers.
* :mod:`p2p.gossip`: membership, block dissemination, state transfer, private data.

This package never imports ``consensus`` or ``secprivnode``: other layers' messages travel as
:class:`~p2p.messages.AppMessage` / :class:`~p2p.messages.AppRequest` values.
"""
