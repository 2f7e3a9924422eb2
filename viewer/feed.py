"""Status-change feed and webhook admin: ``/api/v1/feed`` (SSE), ``/api/v1/status-changes``,
``/api/v1/webhooks`` (JSON) and the HTML pages ``/feed`` and ``/webhooks``.

Data comes from ``recorder.followers``; the views only parse parameters and render.
Errors use the AWS error shape (status, ``x-amzn-ErrorType``, JSON ``Type``/``message``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template_string, request, url_for

from recorder.errors import InvalidParameterValueException, ServiceError
from recorder.followers import webhooks as wh
from recorder.followers.status import Filter, head_position, iso_millis, parse_statuses, read_filtered
from viewer.stream import status_stream

bp = Blueprint("feed", __name__)

MAX_PAGE = 1000


def _ds() -> Any:
    return current_app.extensions["durascope"]


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status, mimetype="application/json")


def _error(exc: ServiceError) -> Response:
    from viewer.lambda_api import error_response

    return error_response(exc)


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameterValueException(f"{name} must be a whole number, got {raw[:50]!r}") from None
    if not lo <= value <= hi:
        raise InvalidParameterValueException(f"{name} must be between {lo} and {hi}")
    return value


def _filter_args() -> Filter:
    statuses = request.args.getlist("status")
    try:
        sts = parse_statuses(statuses) if statuses else None
    except ValueError as exc:
        raise InvalidParameterValueException(f"status: {exc}") from None
    function = request.args.get("function") or None
    prefix = request.args.get("name_prefix") or request.args.get("namePrefix") or None
    if function is not None and len(function) > 256:
        raise InvalidParameterValueException("function is longer than 256 characters")
    if prefix is not None and len(prefix) > 64:
        raise InvalidParameterValueException("name_prefix is longer than 64 characters")
    return Filter(sts, function, prefix)


# --- status changes ----------------------------------------------------------------------------


@bp.get("/api/v1/status-changes")
def status_changes() -> Response:
    """``?after=POSITION&limit=N`` (+ function, status, name_prefix): one page, oldest first,
    with ``nextAfter`` to pass as ``after`` for the next page."""
    try:
        after = _int_arg("after", 0, 0, 2**62)
        limit = _int_arg("limit", 100, 1, MAX_PAGE)
        flt = _filter_args()
    except ServiceError as exc:
        return _error(exc)
    ds = _ds()
    with ds.db.read() as s:
        changes, cursor = read_filtered(s, after or 0, limit or 100, flt, ds.settings)
        head = head_position(s)
    return _json({"statusChanges": [{"position": c.position, "event": c.to_event(ds.settings)} for c in changes],
                  "nextAfter": cursor, "head": head, "hasMore": cursor < head})


@bp.get("/api/v1/feed")
def feed() -> Response:
    """Server-Sent Events, ``id:`` = global log position. Resumes after ``Last-Event-ID``
    (or ``?after=``); without either it starts at the current head (new changes only).
    ``?limit=N`` ends the stream after N events, ``?wait=S`` after S idle seconds."""
    try:
        last = request.headers.get("Last-Event-ID")
        if last not in (None, ""):
            try:
                after: int | None = int(last)
            except ValueError:
                raise InvalidParameterValueException("Last-Event-ID must be a log position") from None
            if after is not None and after < 0:
                raise InvalidParameterValueException("Last-Event-ID must be a log position")
        else:
            after = _int_arg("after", None, 0, 2**62)
        limit = _int_arg("limit", None, 1, 1_000_000)
        wait = _int_arg("wait", None, 0, 86_400)
        flt = _filter_args()
    except ServiceError as exc:
        return _error(exc)
    return status_stream(_ds(), after, limit, wait, flt)  # viewer.stream: capped, one poller for all streams


# --- webhooks JSON admin ---------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidParameterValueException("the request body must be a JSON object")
    return data


def _spec_from(data: dict[str, Any]) -> wh.SubscriptionSpec:
    known = {"url", "statuses", "status", "function", "namePrefix", "onChangeOnly", "maxFailures", "description"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidParameterValueException(f"unknown fields: {', '.join(unknown)[:200]}")
    return wh.validate_spec(data.get("url"), data.get("statuses", data.get("status")), data.get("function"),
                            data.get("namePrefix"), data.get("onChangeOnly", False), data.get("maxFailures"),
                            data.get("description"))


@bp.get("/api/v1/webhooks")
def webhooks_list() -> Response:
    return _json({"webhooks": wh.list_subscriptions(_ds().db)})


@bp.post("/api/v1/webhooks")
def webhooks_create() -> Response:
    """Create a subscription; the response holds its ``secret``, shown only here."""
    try:
        sub = wh.create_subscription(_ds().db, _spec_from(_body()))
    except ServiceError as exc:
        return _error(exc)
    return _json(sub, 201)


@bp.get("/api/v1/webhooks/<sub_id>")
def webhooks_get(sub_id: str) -> Response:
    try:
        return _json(wh.get_subscription(_ds().db, sub_id))
    except ServiceError as exc:
        return _error(exc)


@bp.delete("/api/v1/webhooks/<sub_id>")
def webhooks_delete(sub_id: str) -> Response:
    try:
        wh.delete_subscription(_ds().db, sub_id)
    except ServiceError as exc:
        return _error(exc)
    return Response(status=204)


@bp.post("/api/v1/webhooks/<sub_id>/disable")
def webhooks_disable(sub_id: str) -> Response:
    try:
        return _json(wh.set_enabled(_ds().db, sub_id, False))
    except ServiceError as exc:
        return _error(exc)


@bp.post("/api/v1/webhooks/<sub_id>/enable")
def webhooks_enable(sub_id: str) -> Response:
    try:
        return _json(wh.set_enabled(_ds().db, sub_id, True))
    except ServiceError as exc:
        return _error(exc)


@bp.get("/api/v1/webhooks/<sub_id>/deliveries")
def webhooks_deliveries(sub_id: str) -> Response:
    try:
        limit = _int_arg("limit", 50, 1, MAX_PAGE)
        state = request.args.get("state") or None
        if state not in (None, "pending", "succeeded"):
            raise InvalidParameterValueException("state must be pending or succeeded")
        return _json({"deliveries": wh.list_deliveries(_ds().db, sub_id, limit or 50, state)})
    except ServiceError as exc:
        return _error(exc)


@bp.post("/api/v1/webhooks/<sub_id>/deliveries/<int:delivery_id>/redeliver")
def webhooks_redeliver(sub_id: str, delivery_id: int) -> Response:
    try:
        return _json(wh.redeliver(_ds().db, sub_id, delivery_id), 202)
    except ServiceError as exc:
        return _error(exc)


# --- HTML pages --------------------------------------------------------------------------------------

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · Durascope</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
code,.mono{font-family:ui-monospace,monospace;font-size:12px}.st-FAILED,.st-TIMED_OUT{color:#b00020}
.st-SUCCEEDED{color:#0a7d2c}.st-STOPPED{color:#8a6d00}.err{color:#b00020}.box{background:#fff7d6;padding:.6rem;
border:1px solid #e5c100;margin:1rem 0}form.inline{display:inline}nav a{margin-right:1rem}
</style></head><body><nav><a href="{{ url_for('feed.feed_page') }}">Status feed</a>
<a href="{{ url_for('feed.webhooks_page') }}">Webhooks</a></nav><h1>{{ title }}</h1>
{{ content }}</body></html>"""


def _page(title: str, body_template: str, **ctx: Any) -> str:
    from markupsafe import Markup

    # The body is rendered (and escaped) first; the layout takes it as markup.
    content = Markup(render_template_string(body_template, **ctx))
    return render_template_string(_LAYOUT, title=title, content=content)


_FEED = """
<form method="get">function <input name="function" value="{{ f.function or '' }}">
status <select name="status"><option value="">any</option>{% for s in statuses %}
<option {% if f.statuses and s in f.statuses %}selected{% endif %}>{{ s }}</option>{% endfor %}</select>
name prefix <input name="name_prefix" value="{{ f.name_prefix or '' }}"> <button>Filter</button></form>
<p id="state">connecting…</p>
<table><thead><tr><th>position</th><th>time</th><th>status</th><th>function</th><th>execution</th></tr></thead>
<tbody id="rows">{% for c in changes %}<tr><td>{{ c.position }}</td><td class="mono">{{ c.time }}</td>
<td class="st-{{ c.status }}">{{ c.status }}</td><td>{{ c.function }}</td><td class="mono">{{ c.arn }}</td></tr>
{% endfor %}</tbody></table>
<script>
const qs = new URLSearchParams({{ query|tojson }});
qs.set("after", {{ cursor|tojson }});
const es = new EventSource("{{ url_for('feed.feed') }}?" + qs.toString());
const rows = document.getElementById("rows"), state = document.getElementById("state");
es.onopen = () => { state.textContent = "live"; };
es.onerror = () => { state.textContent = "reconnecting…"; };
es.addEventListener("status-change", (msg) => {
  const ev = JSON.parse(msg.data), d = ev.detail, tr = document.createElement("tr");
  const fn = d.functionArn.split(":function:")[1] || d.functionArn;
  for (const [text, cls] of [[msg.lastEventId, ""], [ev.time, "mono"], [d.status, "st-" + d.status],
                             [fn, ""], [d.durableExecutionArn, "mono"]]) {
    const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td);
  }
  rows.insertBefore(tr, rows.firstChild);
  while (rows.children.length > 500) rows.removeChild(rows.lastChild);
});
</script>"""


@bp.get("/feed")
def feed_page() -> Any:
    try:
        flt = _filter_args()
    except ServiceError as exc:
        return _error(exc)
    ds = _ds()
    with ds.db.read() as s:
        head = head_position(s)
        # The last 50 matching changes, newest first, then live from the head.
        changes, _ = read_filtered(s, max(head - 5000, 0), 5000, flt, ds.settings)
    recent = [{"position": c.position, "time": iso_millis(c.ts_ms), "status": c.status,
               "function": c.function_name, "arn": c.arn} for c in reversed(changes[-50:])]
    query = {k: v for k, v in request.args.items() if k in ("function", "status", "name_prefix") and v}
    from recorder.followers.status import STATUSES

    return _page("Status-change feed", _FEED, f=flt, statuses=STATUSES, changes=recent, cursor=head, query=query)


_WEBHOOKS = """
{% if created %}<div class="box"><b>Subscription created.</b> Its signing secret is shown only this once:
<br><code>{{ created.secret }}</code><br>Verify deliveries with <code>standardwebhooks.Webhook(secret).verify(body, headers)</code>.</div>{% endif %}
{% if error %}<p class="err">{{ error }}</p>{% endif %}
<table><thead><tr><th>url</th><th>filters</th><th>state</th><th>deliveries</th><th></th></tr></thead><tbody>
{% for w in webhooks %}<tr><td class="mono"><a href="{{ url_for('feed.webhook_page', sub_id=w.id) }}">{{ w.url }}</a>
{% if w.description %}<br>{{ w.description }}{% endif %}</td>
<td>status: {{ (w.statuses or ['any'])|join(', ') }}<br>function: {{ w.function or 'any' }}<br>
name prefix: {{ w.namePrefix or '-' }}{% if w.onChangeOnly %}<br>on change only{% endif %}</td>
<td>{% if w.enabled %}enabled{% else %}<span class="err">disabled</span>{% if w.disabledReason %}: {{ w.disabledReason }}{% endif %}{% endif %}</td>
<td>{{ w.deliveries.succeeded }} delivered, {{ w.deliveries.pending }} pending</td>
<td><form class="inline" method="post" action="{{ url_for('feed.webhook_action', sub_id=w.id, action='enable' if not w.enabled else 'disable') }}"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button>{{ 'enable' if not w.enabled else 'disable' }}</button></form>
<form class="inline" method="post" action="{{ url_for('feed.webhook_action', sub_id=w.id, action='delete') }}"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}"><button>delete</button></form></td></tr>
{% else %}<tr><td colspan="5">no webhook subscriptions yet</td></tr>{% endfor %}</tbody></table>
<h2>Add a subscription</h2>
<form method="post" action="{{ url_for('feed.webhooks_page') }}"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<p>URL <input name="url" size="60" required placeholder="https://example.com/hooks/durascope"></p>
<p>statuses {% for s in statuses %}<label><input type="checkbox" name="status" value="{{ s }}"> {{ s }}</label> {% endfor %}</p>
<p>function (name, name prefix or ARN prefix) <input name="function"> execution-name prefix <input name="name_prefix"></p>
<p><label><input type="checkbox" name="on_change_only" value="1"> only when the terminal status differs from the function's previous one</label></p>
<p>description <input name="description" size="40"> <button>Add</button></p></form>"""


@bp.route("/webhooks", methods=["GET", "POST"])
def webhooks_page() -> Any:
    ds = _ds()
    created = error = None
    status = 200
    if request.method == "POST":
        f = request.form
        try:
            spec = wh.validate_spec(f.get("url"), f.getlist("status") or None, f.get("function") or None,
                                    f.get("name_prefix") or None, f.get("on_change_only") == "1", None,
                                    f.get("description") or None)
            created = wh.create_subscription(ds.db, spec)
        except ServiceError as exc:
            error, status = exc.message, 400
    from recorder.followers.status import STATUSES

    return _page("Webhooks", _WEBHOOKS, webhooks=wh.list_subscriptions(ds.db), created=created, error=error,
                 statuses=STATUSES), status


@bp.post("/webhooks/<sub_id>/<action>")
def webhook_action(sub_id: str, action: str) -> Any:
    db = _ds().db
    try:
        if action == "enable":
            wh.set_enabled(db, sub_id, True)
        elif action == "disable":
            wh.set_enabled(db, sub_id, False)
        elif action == "delete":
            wh.delete_subscription(db, sub_id)
            return redirect(url_for("feed.webhooks_page"), 303)
        else:
            raise InvalidParameterValueException(f"unknown action {action[:40]!r}")
    except ServiceError as exc:
        return _error(exc)
    return redirect(url_for("feed.webhook_page", sub_id=sub_id), 303)


@bp.post("/webhooks/<sub_id>/deliveries/<int:delivery_id>/redeliver")
def webhook_redeliver_form(sub_id: str, delivery_id: int) -> Any:
    try:
        wh.redeliver(_ds().db, sub_id, delivery_id)
    except ServiceError as exc:
        return _error(exc)
    return redirect(url_for("feed.webhook_page", sub_id=sub_id), 303)


_WEBHOOK = """
<p class="mono">{{ w.url }}</p>
<p>{% if w.enabled %}enabled{% else %}<span class="err">disabled{% if w.disabledReason %}: {{ w.disabledReason }}{% endif %}</span>{% endif %}
· followed up to log position {{ w.position }} · {{ w.deliveries.succeeded }} delivered, {{ w.deliveries.pending }} pending
· consecutive failures {{ w.consecutiveFailures }} / {{ w.maxFailures }}</p>
<form class="inline" method="post" action="{{ url_for('feed.webhook_action', sub_id=w.id, action='enable' if not w.enabled else 'disable') }}"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button>{{ 'enable' if not w.enabled else 'disable' }}</button></form>
<h2>Delivery log</h2>
<table><thead><tr><th>position</th><th>status</th><th>state</th><th>webhook-id</th><th>attempts (time, code, latency, response)</th><th></th></tr></thead><tbody>
{% for d in deliveries %}<tr><td>{{ d.position }}</td><td class="st-{{ d.status }}">{{ d.status }}</td><td>{{ d.state }}
{% if d.state == 'pending' and d.attempts %}<br>next try {{ iso(d.nextAttemptMs) }}{% endif %}</td>
<td class="mono">{{ d.webhookId }}</td><td>{% for a in d.attemptLog %}<div>#{{ a.attempt }} {{ iso(a.timeMs) }}
· {{ a.statusCode if a.statusCode is not none else '-' }} · {{ a.latencyMs }} ms{% if a.manual %} · manual{% endif %}
{% if a.error %}<span class="err">· {{ a.error }}</span>{% endif %}{% if a.responseExcerpt %}<br><code>{{ a.responseExcerpt }}</code>{% endif %}</div>
{% endfor %}</td><td><form method="post" action="{{ url_for('feed.webhook_redeliver_form', sub_id=w.id, delivery_id=d.id) }}"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button>redeliver</button></form></td></tr>{% else %}<tr><td colspan="6">nothing delivered yet</td></tr>{% endfor %}
</tbody></table>"""


@bp.get("/webhooks/<sub_id>")
def webhook_page(sub_id: str) -> Any:
    db = _ds().db
    try:
        w = wh.get_subscription(db, sub_id)
        deliveries = wh.list_deliveries(db, sub_id, 100)
    except ServiceError as exc:
        return _error(exc)
    return _page("Webhook", _WEBHOOK, w=w, deliveries=deliveries,
                 iso=lambda ms: iso_millis(ms) if ms else "-")
