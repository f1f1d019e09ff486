"""Fixtures to build signed (and deliberately mis-signed) HighLevel webhooks, and live locations.

`signed_webhook(payload, **overrides)` returns `(body_bytes, headers)` signed with the sandbox's keys,
which are the keys the app trusts in sandbox mode (the `settings` fixture), the way Stripe's test
helper `generate_header` works. Overrides make each kind of bad request in one line.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from integration.sandbox.keys import load_sandbox_private_keys

__all__ = ["compact_json", "live_location", "signed_webhook", "throwaway_keys"]


def compact_json(payload: dict) -> bytes:
    """The bytes HighLevel sends: compact JSON, as JavaScript's JSON.stringify produces."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign_ed25519(key: ed25519.Ed25519PrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body)).decode()


def sign_rsa(key: rsa.RSAPrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture(scope="session")
def throwaway_keys():
    """An attacker's keys: well-formed, but not the ones the app trusts."""
    return ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def sandbox_signing_keys(settings):
    """(ed25519, rsa) private keys matching the public keys in `settings` (sandbox mode)."""
    return load_sandbox_private_keys(settings.instance_path)


@pytest.fixture
def signed_webhook(sandbox_signing_keys) -> Callable[..., tuple[bytes, dict[str, str]]]:
    """Build `(body, headers)` for a webhook.

    Args (keywords, all optional):
        schemes: which headers to sign, ("ed25519",), ("rsa",) or both (default: Ed25519 only).
        body: exact bytes to send instead of compact JSON of `payload` (they are what gets signed).
        sign_body: bytes to sign when they should differ from the bytes sent (an altered body).
        ed25519_key / rsa_key: private keys to sign with (e.g. throwaway ones).
        headers: extra or replacement headers (e.g. {"x-ghl-signature": "N/A"}).
    """
    default_ed, default_rsa = sandbox_signing_keys

    def build(payload: dict | None = None, *, schemes=("ed25519",), body: bytes | None = None,
              sign_body: bytes | None = None, ed25519_key=None, rsa_key=None,
              headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
        raw = body if body is not None else compact_json(payload or {})
        signed = raw if sign_body is None else sign_body
        result = {"Content-Type": "application/json"}
        if "ed25519" in schemes:
            result["x-ghl-signature"] = sign_ed25519(ed25519_key or default_ed, signed)
        if "rsa" in schemes:
            result["x-wh-signature"] = sign_rsa(rsa_key or default_rsa, signed)
        result.update(headers or {})
        return raw, result

    return build


@pytest.fixture
def live_location(app) -> Callable[..., str]:
    """Create a Company + Location row (status "installed" unless told otherwise); returns the location id."""
    from integration.extensions import db
    from integration.models import Company, Location

    def make(location_id: str | None = None, *, status: str = "installed", company_id: str = "companyTest0001") -> str:
        location_id = location_id or f"loc{uuid.uuid4().hex[:17]}"
        with db.transaction() as session:
            if session.get(Company, company_id) is None:
                session.add(Company(id=company_id, name="Test Agency"))
                session.flush()
            session.add(Location(id=location_id, company_id=company_id, name="Test Plumbing", status=status))
        return location_id

    return make
