"""Blueprint "oauth": GET /oauth/install and GET /oauth/callback. Thin: the InstallFlow decides."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, redirect, render_template, request, session
from sqlalchemy.exc import SQLAlchemyError

from integration.extensions import get_settings
from oauth.flow import Failure, FailureReason, InstallFlow
from oauth.services import get_oauth

__all__ = ["bp", "get_install_flow"]

log = logging.getLogger(__name__)
bp = Blueprint("oauth", __name__, url_prefix="/oauth", template_folder="templates")

# The consent state is bound to the browser through the signed Flask session (as authlib does).
SESSION_KEY = "oauth_state"


def get_install_flow() -> InstallFlow:
    """The app's InstallFlow, built once per app."""
    app = current_app._get_current_object()
    flow = app.extensions.get("textback.install_flow")
    if flow is None:
        oauth = get_oauth(app)
        flow = InstallFlow(settings=get_settings(app), database=oauth.database, states=oauth.states,
                           store=oauth.store, client=oauth.client, provisioner=oauth.provisioner,
                           on_location_live=oauth.wake_waiting_events)
        app.extensions["textback.install_flow"] = flow
    return flow


@bp.after_request
def _no_store(response):
    # The callback URL carries a one-time code: keep it out of caches and out of Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/install")
def install():
    try:
        url, state = get_install_flow().start_install()
    except SQLAlchemyError as exc:
        log.warning("could not start an install: %s", type(exc).__name__)
        return _failure_page(Failure(reason=FailureReason.STORAGE_ERROR, status=503, reference="-"))
    session[SESSION_KEY] = state
    return redirect(url, code=302)


@bp.get("/callback")
def callback():
    bound_state = session.pop(SESSION_KEY, None)
    outcome = get_install_flow().handle_callback(request.args, bound_state=bound_state)
    if isinstance(outcome, Failure):
        return _failure_page(outcome)
    return redirect(outcome.redirect_to, code=302)


def _failure_page(failure: Failure):
    return render_template("oauth/failure.html", reason=failure.reason, reference=failure.reference), failure.status
