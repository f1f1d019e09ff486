"""Configuration: defaults for local runs, fail-fast production checks, clear errors for bad values."""

import stat

import pytest
from cryptography.fernet import Fernet

from integration.config import SANDBOX_CLIENT_ID, ConfigError, load_settings

PRODUCTION = {
    "TEXTBACK_ENV": "production",
    "SECRET_KEY": "x" * 40,
    "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "GHL_CLIENT_ID": "68a32958b5154ca8bbdc4d40-meh5chaj",
    "GHL_CLIENT_SECRET": "a5949eb7-4d46-4bfd-95c1-e338d4952e6b",
    "GHL_SSO_KEY": "shared-secret",
    "DATABASE_URL": "postgres://u:p@db.example.com:5432/textback",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "PUBLIC_BASE_URL": "https://textback.example.com",
}


def test_local_run_needs_no_configuration(tmp_path):
    settings = load_settings({}, instance_path=tmp_path)
    assert settings.env == "development"
    assert settings.sandbox_mode is True
    assert settings.database_url == f"sqlite:///{tmp_path / 'textback.db'}"
    assert settings.redis_url is None
    assert settings.ghl_client_id == SANDBOX_CLIENT_ID
    assert settings.ghl_app_id == SANDBOX_CLIENT_ID.split("-")[0]
    assert settings.ghl_api_base == "http://localhost:5001"


def test_generated_secrets_are_stable_and_private(tmp_path):
    first = load_settings({}, instance_path=tmp_path)
    second = load_settings({}, instance_path=tmp_path)
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.token_encryption_keys == second.token_encryption_keys
    for name in ("secret_key", "token_encryption_keys"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_production_with_everything_set(tmp_path):
    settings = load_settings(PRODUCTION, instance_path=tmp_path)
    assert settings.is_production and not settings.sandbox_mode
    assert settings.database_url == "postgresql+psycopg://u:p@db.example.com:5432/textback"
    assert settings.ghl_app_id == "68a32958b5154ca8bbdc4d40"
    assert settings.ghl_api_base == "https://services.leadconnectorhq.com"
    assert settings.ghl_marketplace_base == "https://marketplace.gohighlevel.com"
    # HighLevel's published keys, not the sandbox's.
    assert "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=" in settings.ghl_webhook_ed25519_public_key
    assert not (tmp_path / "secret_key").exists(), "production must not generate secrets"


@pytest.mark.parametrize(
    "missing",
    ["SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "GHL_CLIENT_ID", "GHL_CLIENT_SECRET", "DATABASE_URL", "REDIS_URL",
     "GHL_SSO_KEY"],
)
def test_production_names_the_missing_variable(tmp_path, missing):
    environ = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError) as excinfo:
        load_settings(environ, instance_path=tmp_path)
    assert missing in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TEXTBACK_ENV", "staging", "TEXTBACK_ENV must be development or production"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must be a postgresql:// or sqlite:// URL"),
        ("REDIS_URL", "http://cache", "REDIS_URL must be a redis:// URL"),
        ("PUBLIC_BASE_URL", "textback.example.com", "PUBLIC_BASE_URL must be an http(s) URL"),
        ("GHL_ACCEPT_RSA_SIGNATURES", "maybe", "GHL_ACCEPT_RSA_SIGNATURES must be true or false"),
        ("GHL_APP_ID", "not-hex", "GHL_APP_ID must be 24 hex characters"),
        ("GHL_WEBHOOK_ED25519_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----",
         "GHL_WEBHOOK_ED25519_PUBLIC_KEY is not a PEM public key"),
        ("GHL_TIMEOUT_SECONDS", "ten", "GHL_TIMEOUT_SECONDS must be a number"),
    ],
)
def test_malformed_values_name_the_variable(tmp_path, name, value, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_settings({name: value}, instance_path=tmp_path)


def test_bad_encryption_key_is_not_echoed(tmp_path):
    secret_looking = "definitely-not-a-fernet-key-but-secret"
    with pytest.raises(ConfigError) as excinfo:
        load_settings({"TOKEN_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{secret_looking}"},
                      instance_path=tmp_path)
    assert "key #2" in str(excinfo.value)
    assert secret_looking not in str(excinfo.value)


def test_several_encryption_keys_first_encrypts(tmp_path):
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    settings = load_settings({"TOKEN_ENCRYPTION_KEYS": " , ".join(keys)}, instance_path=tmp_path)
    assert settings.token_encryption_keys == tuple(keys)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_forms(tmp_path, given, expected):
    assert load_settings({"DATABASE_URL": given}, instance_path=tmp_path).database_url == expected


def test_secrets_are_not_in_repr(tmp_path):
    settings = load_settings(PRODUCTION, instance_path=tmp_path)
    text = repr(settings)
    for secret in (PRODUCTION["SECRET_KEY"], PRODUCTION["GHL_CLIENT_SECRET"], PRODUCTION["TOKEN_ENCRYPTION_KEYS"]):
        assert secret not in text
