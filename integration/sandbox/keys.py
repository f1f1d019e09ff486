"""The sandbox's own webhook signing keys (HighLevel's private keys are, rightly, not ours).

Generated once into `instance/sandbox_keys/` and shared by the sandbox (which signs) and the app
(which verifies) in sandbox mode, so a fresh checkout works with no configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

__all__ = ["load_sandbox_private_keys", "sandbox_public_keys"]

_ED25519_FILE = "ed25519_private.pem"
_RSA_FILE = "rsa_private.pem"


def _write_private(path: Path, key) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        # link() fails if another process won the race; then we use its key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def load_sandbox_private_keys(instance_path: str | os.PathLike):
    """Return (ed25519_private_key, rsa_private_key), generating them on first use."""
    folder = Path(instance_path) / "sandbox_keys"
    folder.mkdir(parents=True, exist_ok=True)
    ed_path, rsa_path = folder / _ED25519_FILE, folder / _RSA_FILE
    if not ed_path.exists():
        _write_private(ed_path, ed25519.Ed25519PrivateKey.generate())
    if not rsa_path.exists():
        # HighLevel's legacy key is 4096-bit; 2048 keeps first start-up fast and verifies the same way.
        _write_private(rsa_path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ed_key = serialization.load_pem_private_key(ed_path.read_bytes(), password=None)
    rsa_key = serialization.load_pem_private_key(rsa_path.read_bytes(), password=None)
    return ed_key, rsa_key


def _public_pem(private_key) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def sandbox_public_keys(instance_path: str | os.PathLike) -> tuple[str, str]:
    """Return the PEMs (ed25519, rsa) the app uses to verify sandbox webhooks."""
    ed_key, rsa_key = load_sandbox_private_keys(instance_path)
    return _public_pem(ed_key), _public_pem(rsa_key)
