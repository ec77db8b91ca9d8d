"""The node's JSON-RPC 2.0 edge: method table, dispatcher, OpenRPC document, JSON codec and aiohttp server.

Everything here talks to the node only through :class:`secprivnode.api.NodeService`.
"""
