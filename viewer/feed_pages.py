"""The HTML pages of status changes and webhooks: ``/feed`` (live), ``/webhooks`` (the
subscriptions, and a form to add one) and ``/webhooks/<id>`` (one subscription and its
delivery log). Their JSON twins are ``/api/v1/feed/recent`` and ``/api/v1/webhooks[/<id>]``.

Views gather a view model (``viewer.view_models.feed``) and render it in the app's layout.
A refused form comes back in place, with what was typed and why it was refused.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from recorder.errors import ServiceError
from recorder.followers import webhooks as wh
from viewer import get_durascope
from viewer.view_models.common import ViewError
from viewer.view_models.feed import apply_action, build_feed, build_webhook, build_webhook_list, create_from_form

bp = Blueprint("feed_pages", __name__, template_folder="templates")


@bp.get("/feed")
def feed_page() -> Any:
    return render_template("feed.html", v=build_feed(get_durascope(current_app), request.args))


@bp.route("/webhooks", methods=["GET", "POST"])
def webhooks_page() -> Any:
    ds = get_durascope(current_app)
    if request.method == "GET":
        return render_template("webhooks.html", v=build_webhook_list(ds))
    try:
        created = create_from_form(ds, request.form)
    except (ServiceError, ViewError) as exc:
        view = build_webhook_list(ds, form_error=exc.message, form=request.form.to_dict(flat=False))
        return render_template("webhooks.html", v=view), 400
    return render_template("webhooks.html", v=build_webhook_list(ds, created=created)), 201


@bp.get("/webhooks/<sub_id>")
def webhook_page(sub_id: str) -> Any:
    return render_template("webhook.html", v=build_webhook(get_durascope(current_app), sub_id))


@bp.post("/webhooks/<sub_id>/<action>")
def webhook_action(sub_id: str, action: str) -> Any:
    ds = get_durascope(current_app)
    try:
        apply_action(ds, sub_id, action)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        return render_template("webhook.html", v=build_webhook(ds, sub_id, form_error=exc.message)), 400
    if action == "delete":
        return redirect(url_for(".webhooks_page"), 303)
    return redirect(url_for(".webhook_page", sub_id=sub_id), 303)


@bp.post("/webhooks/<sub_id>/deliveries/<int:delivery_id>/redeliver")
def webhook_redeliver(sub_id: str, delivery_id: int) -> Any:
    ds = get_durascope(current_app)
    try:
        wh.redeliver(ds.db, sub_id, delivery_id)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        return render_template("webhook.html", v=build_webhook(ds, sub_id, form_error=exc.message)), 400
    return redirect(url_for(".webhook_page", sub_id=sub_id) + f"#delivery-{delivery_id}", 303)
