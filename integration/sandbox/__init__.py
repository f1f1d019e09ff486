"""The sandbox: a simulated HighLevel (DESIGN §5) served by `textback sandbox`.

create_sandbox_app() builds the Flask app; integration.sandbox.server runs it over real HTTP.

Where things are:
  seed.py, world.py, records.py   the known agency, sub-accounts, users, contacts (deterministic ids)
  state.py                        all in-memory state behind one lock; reset() returns to the seed
  tokens.py, oauth_views.py       codes, rotating single-use refresh tokens, location tokens, installs
  consent.py                      /v2/oauth/chooselocation (pick a sub-account or bulk-install)
  guard.py, api/                  Version header, token class, scope, location access; the endpoints
  ratelimit.py, faults.py         HighLevel's limits and headers; switchable failures
  crm.py, payloads.py             calls, replies, texts, installs and the webhooks they cause
  webhooks.py                     signing (Ed25519 + RSA) and delivery, retried only after a 429
  control.py                      /_sandbox/ JSON control API for tests, the UI and benchmarks
  ui.py, templates/sandbox/       the web UI at /
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from flask import Flask, Response, g, jsonify, request

from integration.sandbox.errors import ApiError, OAuthError
from integration.sandbox.settings import SandboxConfig

__all__ = ["create_sandbox_app"]

log = logging.getLogger(__name__)

# Blueprints that are "HighLevel" (faults, request log and rate-limit headers apply to them).
_API_BLUEPRINTS = frozenset({"sandbox_api", "sandbox_oauth"})


def create_sandbox_app(
    *,
    instance_path: str | os.PathLike,
    app_webhook_url: str | None = None,
    app_redirect_uris: list[str] | tuple[str, ...] | None = None,
    webhook_retry_delays: tuple[float, ...] | list[float] | None = None,
    **options,
) -> Flask:
    """Build the sandbox app. `options` are SandboxConfig fields (rate_limit, access_token_ttl, ...)."""
    from integration.sandbox.keys import load_sandbox_private_keys
    from integration.sandbox.state import SandboxState
    from integration.sandbox.webhooks import WebhookDispatcher, WebhookSigner

    changes = dict(options)
    if app_webhook_url is not None:
        changes["webhook_url"] = app_webhook_url
    if app_redirect_uris is not None:
        changes["redirect_uris"] = list(app_redirect_uris)
    if webhook_retry_delays is not None:
        changes["webhook_retry_delays"] = list(webhook_retry_delays)
    config = SandboxConfig().updated(changes)

    instance = Path(instance_path).resolve()
    state = SandboxState(config)
    ed_key, rsa_key = load_sandbox_private_keys(instance)
    state.dispatcher = WebhookDispatcher(WebhookSigner(ed_key, rsa_key), lambda: state.config)

    app = Flask(__name__, instance_path=str(instance), template_folder="templates")
    # Only signs the UI's flash messages; a fresh one per process is fine.
    app.secret_key = secrets.token_hex(32)
    # Its own cookie: browsers share cookies between ports of one host, so with the default name the app's
    # session (set by the page the sandbox embeds, on 127.0.0.1 too) replaced the sandbox UI's, and its next form
    # post failed the CSRF check. HighLevel and the app are on different domains; here only the name keeps them
    # apart.
    app.config["SESSION_COOKIE_NAME"] = "textback_sandbox_session"
    app.json.sort_keys = False
    app.extensions["sandbox"] = state

    from integration.sandbox.api import bp as api_bp
    from integration.sandbox.consent import bp as consent_bp
    from integration.sandbox.control import bp as control_bp
    from integration.sandbox.oauth_views import bp as oauth_bp
    from integration.sandbox.ui import bp as ui_bp

    for blueprint in (oauth_bp, api_bp, consent_bp, control_bp, ui_bp):
        app.register_blueprint(blueprint)
    _install_hooks(app)
    return app


def _install_hooks(app: Flask) -> None:
    state = app.extensions["sandbox"]

    @app.before_request
    def inject_fault():
        if request.blueprint not in _API_BLUEPRINTS:
            return None
        g.started = time.monotonic()
        g.arrived_at = time.time()
        # HighLevel's own time (integration.sandbox.latency), before anything acts; no lock is held meanwhile.
        delay = state.latency_delay()
        if delay:
            state.latency_stats.wait(delay)
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        fault = state.faults.take(method=request.method, path=request.path,
                                  location_id=state.tokens.peek_resource(token) if token else None)
        g.fault = fault
        if fault is None:
            return None
        if fault.mode == "429":
            return jsonify({"statusCode": 429, "message": "Too Many Requests"}), 429, {
                "Retry-After": str(max(1, round(fault.delay)))}
        if fault.mode == "500":
            return jsonify({"statusCode": 500, "message": "Internal server error"}), 500
        if fault.mode == "409":
            return jsonify({"statusCode": 409, "message": "The slot you have selected is no longer available.",
                            "error": "Conflict"}), 409
        if fault.mode == "422":
            return jsonify({"statusCode": 422, "message": ["startTime must be a valid ISO 8601 date string"],
                            "error": "Unprocessable Entity"}), 422
        if fault.mode == "html_error":
            html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(html, status=502, mimetype="text/html")
        if fault.mode == "hang":
            time.sleep(fault.delay)
            return jsonify({"statusCode": 504, "message": "Gateway Timeout"}), 504
        if fault.mode == "slow":
            time.sleep(fault.delay)
        return None

    @app.after_request
    def finish(response: Response):
        if request.blueprint not in _API_BLUEPRINTS:
            return response
        for name, value in (getattr(g, "rate_headers", None) or {}).items():
            response.headers.setdefault(name, value)
        grant = getattr(g, "grant", None)
        fault = getattr(g, "fault", None)
        entry = {"method": request.method, "path": request.path, "query": request.args.to_dict(),
                 "status": response.status_code, "resource": grant.resource_id if grant else None,
                 "userType": grant.user_type if grant else None, "fault": fault.mode if fault else None,
                 "arrived": getattr(g, "arrived_at", None)}
        if request.path == "/oauth/token":
            form = request.form if not request.is_json else (request.get_json(silent=True) or {})
            entry["grant_type"] = form.get("grant_type")
            entry["user_type"] = form.get("user_type")
        state.log_request(entry)
        if fault is not None and fault.mode == "empty_body":
            response.set_data(b"")
        if fault is not None and fault.mode == "timeout_after_accept":
            # The work is done (message recorded, webhook sent); the answer arrives too late.
            time.sleep(fault.delay)
        return response

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(OAuthError)
    def oauth_error(exc: OAuthError):
        return jsonify(exc.body()), exc.status

    @app.errorhandler(404)
    def not_found(_exc):
        return jsonify({"statusCode": 404, "message": f"Cannot {request.method} {request.path}",
                        "error": "Not Found"}), 404

    @app.errorhandler(405)
    def not_allowed(_exc):
        return jsonify({"statusCode": 404, "message": f"Cannot {request.method} {request.path}",
                        "error": "Not Found"}), 404

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return jsonify({"statusCode": exc.code, "message": exc.description}), exc.code
        log.exception("sandbox error on %s %s", request.method, request.path)
        return jsonify({"statusCode": 500, "message": "Internal server error"}), 500
