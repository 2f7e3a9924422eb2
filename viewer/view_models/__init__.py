"""The viewer's data, prepared in one place.

Every page and its ``/api/v1`` twin calls a ``build_*`` function of these modules and gets
a frozen dataclass back; the HTML templates only render it and the JSON routes only
``to_dict`` it, so the two can never disagree. Parsing of user input (query strings,
cursors, dates, form fields) also happens here, at the edge: bad input raises ``ViewError``
(a 400 on both sides).

* ``common``: errors, durations, plurals, the error shape shown everywhere;
* ``executions``: the executions list; ``execution``: one execution's page (with
  ``history_walk``, which reads its history), and one operation;
* ``history``: the event table and the logs; ``feed``: the status-change feed and webhooks.

All instants are epoch milliseconds (the store's unit); templates format them.
"""
