"""Bundled load testing (``secprivnode bench``): workloads, rate control, worker processes,
the crypto ceiling, the RPC read comparison, and the Caliper-style report."""
