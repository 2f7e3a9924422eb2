"""Seed workflows, written with the official SDK and the standard library only."""
