"""Webhook signature verification on the raw request bytes (ghl-api-facts §2.2).

HighLevel signs every app webhook twice during the migration period: `x-ghl-signature` (Ed25519,
current) and `x-wh-signature` (RSA-SHA256 PKCS#1 v1.5, legacy, sunset mid-2026). Both are base64
over the exact body bytes. This module is pure (no Flask) so workers, tests and benchmarks can use it.

Rules, each one a reason a forged request fails:
- Ed25519 is checked first whenever its header is present; if it fails we do NOT fall back to RSA
  (a downgrade would let an attacker strip the strong signature and keep a replayed legacy one).
- RSA is accepted only when enabled in settings.
- A missing header, an empty one or the literal "N/A" (an observed HighLevel quirk) counts as unsigned;
  there is no "skip verification" path, unlike HighLevel's own SDK.
- Several public keys may be configured per scheme so a key rollover never drops a webhook.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

__all__ = [
    "ED25519_HEADER",
    "RSA_HEADER",
    "SignatureError",
    "WebhookVerifier",
    "load_public_keys",
]

ED25519_HEADER = "x-ghl-signature"
RSA_HEADER = "x-wh-signature"

SCHEME_ED25519 = "ed25519"
SCHEME_RSA = "rsa-sha256"

# Values some HighLevel configurations send instead of a signature: treat as "no header".
_UNSIGNED_MARKERS = {"", "n/a", "na", "none", "null"}
# A base64 RSA-4096 signature is 684 characters; anything far longer is junk, not worth decoding.
_MAX_HEADER_CHARS = 2048
_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class SignatureError(Exception):
    """The request is not a verified HighLevel webhook. `reason` is a short code safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_public_keys(pem_text: str | Iterable[str]) -> list:
    """Parse one or more PEM public keys (several concatenated blocks allowed, for rollover).

    Raises:
        ValueError: when no block parses, naming how many blocks were found (never the key text).
    """
    texts = [pem_text] if isinstance(pem_text, str) else list(pem_text)
    keys = []
    for text in texts:
        blocks = _PEM_BLOCK.findall(text.replace("\\n", "\n"))
        for block in blocks:
            keys.append(load_pem_public_key(block.encode()))
    if not keys:
        raise ValueError("no PEM public key found")
    return keys


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that maps the unsigned markers to None."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                value = candidate
                break
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in _UNSIGNED_MARKERS else value


def _decode(signature: str) -> bytes:
    if len(signature) > _MAX_HEADER_CHARS:
        raise SignatureError("signature header too long")
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature is not base64") from None


@dataclass(frozen=True)
class WebhookVerifier:
    """Verifies a webhook body against the configured HighLevel public keys.

    Build with `WebhookVerifier.from_settings(settings)` or pass keys directly (tests use throwaway keys).
    """

    ed25519_keys: Sequence[ed25519.Ed25519PublicKey]
    rsa_keys: Sequence[rsa.RSAPublicKey] = ()
    accept_rsa: bool = False

    def __post_init__(self) -> None:
        for key in self.ed25519_keys:
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise TypeError("ed25519_keys must hold Ed25519 public keys")
        for key in self.rsa_keys:
            if not isinstance(key, rsa.RSAPublicKey):
                raise TypeError("rsa_keys must hold RSA public keys")

    @classmethod
    def from_settings(cls, settings) -> WebhookVerifier:
        """Keys from `ghl_webhook_ed25519_public_key` / `ghl_webhook_rsa_public_key` (PEM, several allowed)."""
        return cls(
            ed25519_keys=tuple(load_public_keys(settings.ghl_webhook_ed25519_public_key)),
            rsa_keys=tuple(load_public_keys(settings.ghl_webhook_rsa_public_key)),
            accept_rsa=settings.ghl_accept_rsa_signatures,
        )

    def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> str:
        """Check the signature of `raw_body` exactly as received.

        Returns:
            The scheme that passed: "ed25519" or "rsa-sha256".

        Raises:
            SignatureError: unsigned, undecodable, or not made by any configured key.
        """
        ed_signature = _header(headers, ED25519_HEADER)
        if ed_signature is not None:
            self._verify_ed25519(raw_body, _decode(ed_signature))
            return SCHEME_ED25519
        rsa_signature = _header(headers, RSA_HEADER)
        if rsa_signature is None:
            raise SignatureError("unsigned")
        if not self.accept_rsa:
            raise SignatureError("legacy RSA signatures are disabled")
        self._verify_rsa(raw_body, _decode(rsa_signature))
        return SCHEME_RSA

    def _verify_ed25519(self, body: bytes, signature: bytes) -> None:
        if len(signature) != 64:
            raise SignatureError("ed25519 signature has the wrong length")
        for key in self.ed25519_keys:
            try:
                key.verify(signature, body)
                return
            except InvalidSignature:
                continue
        raise SignatureError("ed25519 signature does not match")

    def _verify_rsa(self, body: bytes, signature: bytes) -> None:
        for key in self.rsa_keys:
            try:
                key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
                return
            except (InvalidSignature, ValueError):
                continue
        raise SignatureError("rsa signature does not match")
