"""Durascope recorder: the durable engine (control plane) and the append-only event store."""
