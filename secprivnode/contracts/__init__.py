"""Contracts: the runtime that simulates Python contracts, endorsement policies, system contracts."""
