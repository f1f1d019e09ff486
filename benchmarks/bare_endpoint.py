"""The ceiling for the webhook benchmark: a Flask endpoint that only verifies the signature and answers 200.

    gunicorn benchmarks.bare_endpoint:app --workers 2 --threads 4

Same settings loader (TEXTBACK_INSTANCE_PATH, so the sandbox's keys in sandbox mode), same
WebhookVerifier and same body limit as `POST /webhooks/ghl`, and nothing else: no database, no
Redis, no JSON parsing. Whatever our receiver does beyond this is the cost of not losing a webhook.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

from integration.config import load_settings
from integration.signatures import SignatureError, WebhookVerifier

__all__ = ["app", "create_bare_app"]


def create_bare_app() -> Flask:
    """A Flask app with one route, POST /webhooks/ghl: 200 for a valid signature, 401 otherwise."""
    settings = load_settings()
    verifier = WebhookVerifier.from_settings(settings)
    bare = Flask(__name__)
    bare.config["MAX_CONTENT_LENGTH"] = settings.webhook_max_bytes

    @bare.post("/webhooks/ghl")
    def verify_only():
        raw_body = request.get_data(cache=False)
        try:
            verifier.verify(raw_body, request.headers)
        except SignatureError:
            return jsonify(error="invalid or missing signature"), 401
        return jsonify(status="verified"), 200

    @bare.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return bare


app = create_bare_app()
