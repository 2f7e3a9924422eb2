"""Followers of the event log: the status-change feed and signed webhooks.

A follower reads the global log position in order and keeps the last position it
has handled in the same database (docs/protocol.md#invariants, 5):

* ``status``     derives EventBridge-shaped status-change events from the log.
* ``models``     tables of revision 0002: follower positions/leases, webhook
                 subscriptions, deliveries and their attempt log.
* ``webhooks``   subscriptions (validation, filters, secrets) and the admin queries.
* ``outbox``     the statements on ``webhook_deliveries``: fan-out, claim (order per
                 subscription and execution), record, prune.
* ``bulk``       one statement for many rows (a JSON document) on both databases.
* ``sender``     the HTTP/1.1 client: kept-alive connections, the address policy.
* ``dispatcher`` the delivery pipeline: fan-out thread, sending threads, the loop that
                 claims and records; durable retries with backoff and jitter.
"""
