"""secprivnode: the node daemon, its pipeline, RPC, client SDK and CLI."""

__version__ = "0.1.0"
