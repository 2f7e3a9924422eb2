"""Followers of the event log: the status-change feed and signed webhooks.

A follower reads the global log position in order and keeps the last position it
has handled in the same database (DESIGN invariant 5):

* ``status``     derives EventBridge-shaped status-change events from the log.
* ``models``     tables of revision 0002: follower positions/leases, webhook
                 subscriptions, deliveries and their attempt log.
* ``webhooks``   subscriptions (validation, filters, secrets) and the admin queries.
* ``dispatcher`` the delivery loop: fan-out per subscription, signed HTTP sends,
                 durable retries with backoff and jitter.
"""
