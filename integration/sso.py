"""HighLevel custom-page SSO: the CryptoJS passphrase format (ghl-api-facts.md §10.3).

HighLevel encrypts the user context with the app's Shared Secret as `CryptoJS.AES.encrypt(json,
secret)`: base64("Salted__" + 8-byte salt + AES-256-CBC ciphertext), key and IV from OpenSSL's
EVP_BytesToKey (MD5, one round). We only ever trust what decrypts with our secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["SSOContext", "SSOError", "decrypt_sso_payload", "encrypt_sso_payload"]

_MAGIC = b"Salted__"


class SSOError(Exception):
    """The payload is not a valid SSO payload for our secret (the message is safe to show)."""


@dataclass(frozen=True)
class SSOContext:
    user_id: str
    company_id: str
    role: str
    type: str
    location_id: str | None
    user_name: str | None
    email: str | None


def _evp_bytes_to_key(passphrase: bytes, salt: bytes) -> tuple[bytes, bytes]:
    derived, block = b"", b""
    while len(derived) < 48:
        block = hashlib.md5(block + passphrase + salt, usedforsecurity=False).digest()
        derived += block
    return derived[:32], derived[32:48]


def encrypt_sso_payload(data: dict, secret: str) -> str:
    """Encrypt like HighLevel does (used by the sandbox and the tests)."""
    salt = os.urandom(8)
    key, iv = _evp_bytes_to_key(secret.encode(), salt)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(data).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(_MAGIC + salt + encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt_sso_payload(payload: str, secret: str) -> SSOContext:
    """Decrypt and validate an SSO payload; raise SSOError when it is not ours or not well formed."""
    if not secret:
        raise SSOError("SSO is not configured (GHL_SSO_KEY is empty)")
    try:
        raw = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SSOError("the SSO payload is not base64") from None
    if len(raw) < 32 or not raw.startswith(_MAGIC) or (len(raw) - 16) % 16:
        raise SSOError("the SSO payload is not in the expected format")
    key, iv = _evp_bytes_to_key(secret.encode(), raw[8:16])
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        data = json.loads(unpadder.update(padded) + unpadder.finalize())
    except (ValueError, UnicodeDecodeError):
        # Wrong secret or tampered payload: both look like garbage after decryption.
        raise SSOError("the SSO payload did not decrypt with our shared secret") from None
    if not isinstance(data, dict) or not data.get("userId") or not data.get("companyId"):
        raise SSOError("the SSO payload lacks userId or companyId")
    return SSOContext(
        user_id=str(data["userId"]),
        company_id=str(data["companyId"]),
        role=str(data.get("role") or "user"),
        type=str(data.get("type") or ""),
        location_id=str(data["activeLocation"]) if data.get("activeLocation") else None,
        user_name=data.get("userName"),
        email=data.get("email"),
    )
