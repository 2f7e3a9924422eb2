"""Seed workflows, written with the official SDK and the standard library only.

``hello`` (two steps and a wait), ``orders`` (retries on a flaky payment, an approval variant),
``saga`` (compensation in reverse order), ``document_etl`` (approval with timeout and heartbeats,
bulk inputs), ``loan`` (parallel checks, two human decisions) and ``failures`` (one handler per
way an execution goes wrong). ``catalog.CATALOG`` names them as functions; ``durascope demo``
registers and runs them all.
"""
