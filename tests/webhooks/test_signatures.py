"""WebhookVerifier: only the exact bytes, signed by a trusted key, under an accepted scheme, pass."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from integration.signatures import SignatureError, WebhookVerifier, load_public_keys
from tests.plugins.webhooks import sign_ed25519, sign_rsa

BODY = b'{"type":"InboundMessage","locationId":"loc1","webhookId":"w-1"}'


@pytest.fixture(scope="module")
def keys():
    return ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_keys():
    return ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_verifier(keys, *, accept_rsa=True, extra=()):
    ed_key, rsa_key = keys
    return WebhookVerifier(
        ed25519_keys=(ed_key.public_key(), *[k[0].public_key() for k in extra]),
        rsa_keys=(rsa_key.public_key(), *[k[1].public_key() for k in extra]),
        accept_rsa=accept_rsa,
    )


def reason_of(verifier, body, headers) -> str:
    with pytest.raises(SignatureError) as info:
        verifier.verify(body, headers)
    return info.value.reason


def test_valid_ed25519_passes(keys):
    assert make_verifier(keys).verify(BODY, {"x-ghl-signature": sign_ed25519(keys[0], BODY)}) == "ed25519"


def test_header_names_are_case_insensitive(keys):
    assert make_verifier(keys).verify(BODY, {"X-GHL-Signature": sign_ed25519(keys[0], BODY)}) == "ed25519"


def test_valid_rsa_passes_when_enabled(keys):
    assert make_verifier(keys).verify(BODY, {"x-wh-signature": sign_rsa(keys[1], BODY)}) == "rsa-sha256"


def test_valid_rsa_rejected_when_disabled(keys):
    verifier = make_verifier(keys, accept_rsa=False)
    assert "disabled" in reason_of(verifier, BODY, {"x-wh-signature": sign_rsa(keys[1], BODY)})


def test_bad_ed25519_does_not_fall_back_to_rsa(keys, other_keys):
    """Catalogue A3: a failing strong signature is not rescued by a valid legacy one (no downgrade)."""
    headers = {"x-ghl-signature": sign_ed25519(other_keys[0], BODY), "x-wh-signature": sign_rsa(keys[1], BODY)}
    assert reason_of(make_verifier(keys), BODY, headers) == "ed25519 signature does not match"


@pytest.mark.parametrize("value", [None, "", "   ", "N/A", "n/a"])
def test_missing_or_na_header_is_unsigned(keys, value):
    headers = {} if value is None else {"x-ghl-signature": value, "x-wh-signature": value}
    assert reason_of(make_verifier(keys), BODY, headers) == "unsigned"


def test_na_ed25519_header_falls_through_to_a_valid_rsa_one(keys):
    """"N/A" means "this header is absent", so the legacy header is judged on its own."""
    headers = {"x-ghl-signature": "N/A", "x-wh-signature": sign_rsa(keys[1], BODY)}
    assert make_verifier(keys).verify(BODY, headers) == "rsa-sha256"


def test_forged_signature_rejected(keys):
    forged = base64.b64encode(bytes(64)).decode()
    assert reason_of(make_verifier(keys), BODY, {"x-ghl-signature": forged}) == "ed25519 signature does not match"


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_one_altered_byte_rejected(keys, position):
    altered = bytearray(BODY)
    altered[position] ^= 0x01
    headers = {"x-ghl-signature": sign_ed25519(keys[0], BODY), "x-wh-signature": sign_rsa(keys[1], BODY)}
    assert reason_of(make_verifier(keys), bytes(altered), headers) == "ed25519 signature does not match"
    rsa_only = {"x-wh-signature": headers["x-wh-signature"]}
    assert reason_of(make_verifier(keys), bytes(altered), rsa_only) == "rsa signature does not match"


def test_truncated_body_rejected(keys):
    headers = {"x-ghl-signature": sign_ed25519(keys[0], BODY)}
    assert reason_of(make_verifier(keys), BODY[:-1], headers) == "ed25519 signature does not match"


def test_truncated_signature_rejected(keys):
    signature = sign_ed25519(keys[0], BODY)
    assert reason_of(make_verifier(keys), BODY, {"x-ghl-signature": signature[:-4]}) == (
        "ed25519 signature has the wrong length"
    )


def test_reserialized_body_rejected(keys):
    """Verification is over raw bytes: the same JSON with other whitespace does not pass."""
    pretty = b'{"type": "InboundMessage", "locationId": "loc1", "webhookId": "w-1"}'
    assert reason_of(make_verifier(keys), pretty, {"x-ghl-signature": sign_ed25519(keys[0], BODY)}) == (
        "ed25519 signature does not match"
    )


def test_wrong_key_rejected_for_both_schemes(keys, other_keys):
    verifier = make_verifier(keys)
    assert reason_of(verifier, BODY, {"x-ghl-signature": sign_ed25519(other_keys[0], BODY)}) == (
        "ed25519 signature does not match"
    )
    assert reason_of(verifier, BODY, {"x-wh-signature": sign_rsa(other_keys[1], BODY)}) == (
        "rsa signature does not match"
    )


@pytest.mark.parametrize("garbage", ["not base64!!", "é" * 10, "A" * 5000, "AAAA====AAAA"])
def test_malformed_signature_is_a_rejection_not_a_crash(keys, garbage):
    assert reason_of(make_verifier(keys), BODY, {"x-ghl-signature": garbage}) in {
        "signature is not base64", "signature header too long", "ed25519 signature has the wrong length",
    }


def test_rollover_accepts_any_configured_key(keys, other_keys):
    verifier = make_verifier(keys, extra=[other_keys])
    assert verifier.verify(BODY, {"x-ghl-signature": sign_ed25519(other_keys[0], BODY)}) == "ed25519"
    assert verifier.verify(BODY, {"x-wh-signature": sign_rsa(other_keys[1], BODY)}) == "rsa-sha256"


def test_load_public_keys_reads_concatenated_pem_blocks(keys, other_keys):
    def pem(private):
        return private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    loaded = load_public_keys(pem(keys[0]) + pem(other_keys[0]))
    assert [k.public_bytes_raw() for k in loaded] == [keys[0].public_key().public_bytes_raw(),
                                                     other_keys[0].public_key().public_bytes_raw()]


def test_load_public_keys_without_pem_is_an_error():
    with pytest.raises(ValueError, match="no PEM public key"):
        load_public_keys("not a key")


def test_verifier_refuses_a_key_of_the_wrong_kind(keys):
    with pytest.raises(TypeError):
        WebhookVerifier(ed25519_keys=(keys[1].public_key(),))


def test_from_settings_trusts_the_sandbox_keys_in_sandbox_mode(settings, sandbox_signing_keys):
    verifier = WebhookVerifier.from_settings(settings)
    ed_key, rsa_key = sandbox_signing_keys
    assert verifier.verify(BODY, {"x-ghl-signature": sign_ed25519(ed_key, BODY)}) == "ed25519"
    assert verifier.verify(BODY, {"x-wh-signature": sign_rsa(rsa_key, BODY)}) == "rsa-sha256"
