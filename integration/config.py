"""Configuration: every setting the service reads, in one place (DESIGN §3).

Values come from the environment (and `.env` in development). Local runs need no configuration:
secrets and keys are generated once into `instance/`. In production a missing secret stops
start-up with one line naming the variable, never a traceback.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

__all__ = ["ConfigError", "Settings", "load_settings", "parse_bool"]

DEFAULT_API_BASE = "https://services.leadconnectorhq.com"
DEFAULT_MARKETPLACE_BASE = "https://marketplace.gohighlevel.com"

# HighLevel's published webhook keys (shared/ghl-api-facts.md §2.2). The Ed25519 key is copied from
# three independent public codebases that quote the Webhook Integration Guide; unverified live.
GHL_ED25519_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=
-----END PUBLIC KEY-----
"""
GHL_RSA_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
"""

# The sandbox's Marketplace app: fixed, public, and useless against the real HighLevel.
SANDBOX_CLIENT_ID = "5f0c1a2b3c4d5e6f7a8b9c0d-sandbox1"
SANDBOX_CLIENT_SECRET = "0b5a8f9e-sandbox-secret-not-for-production"  # noqa: S105 - public sandbox credential
SANDBOX_SSO_KEY = "sandbox-shared-secret"
SANDBOX_DEFAULT_BASE = "http://localhost:5001"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and is safe to print."""


def parse_bool(name: str, raw: str | None, default: bool) -> bool:
    """Parse a boolean setting strictly: junk is an error, not False."""
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_int(name: str, raw: str | None, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def parse_float(name: str, raw: str | None, default: float, *, minimum: float = 0.0) -> float:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def normalize_database_url(name: str, url: str) -> str:
    """Accept `postgres://` as hosting platforms give it; SQLAlchemy wants `postgresql+psycopg://`."""
    url = url.strip()
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme in {"postgres", "postgresql"}:
        return "postgresql+psycopg" + url[len(scheme):]
    if scheme.startswith("postgresql+") or scheme.startswith("sqlite"):
        return url
    raise ConfigError(f"{name} must be a postgresql:// or sqlite:// URL, got scheme {scheme or '(none)'!r}")


def check_http_url(name: str, url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {url!r}")
    return url


def check_redis_url(name: str, url: str) -> str:
    url = url.strip()
    if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name} must be a redis:// URL")
    return url


def check_fernet_keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ConfigError(f"{name} is empty")
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            # Never echo the key itself: it is a secret.
            raise ConfigError(f"{name}: key #{index} is not a valid Fernet key (32 url-safe base64 bytes)") from None
    return keys


def check_pem(name: str, pem: str) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pem = pem.replace("\\n", "\n").strip() + "\n"
    try:
        load_pem_public_key(pem.encode())
    except ValueError:
        raise ConfigError(f"{name} is not a PEM public key") from None
    return pem


@dataclass(frozen=True)
class Settings:
    """Typed, validated settings. Build with `load_settings()`; tests override with `dataclasses.replace`."""

    env: str = "development"
    instance_path: str = "instance"
    database_url: str = "sqlite:///instance/textback.db"
    redis_url: str | None = None
    secret_key: str = field(default="", repr=False)
    token_encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    public_base_url: str = "http://localhost:5000"
    ghl_client_id: str = SANDBOX_CLIENT_ID
    ghl_client_secret: str = field(default=SANDBOX_CLIENT_SECRET, repr=False)
    ghl_app_id: str = SANDBOX_CLIENT_ID.split("-", 1)[0]
    ghl_sso_key: str = field(default=SANDBOX_SSO_KEY, repr=False)
    ghl_api_base: str = DEFAULT_API_BASE
    ghl_marketplace_base: str = DEFAULT_MARKETPLACE_BASE
    ghl_webhook_ed25519_public_key: str = GHL_ED25519_PUBLIC_KEY
    ghl_webhook_rsa_public_key: str = GHL_RSA_PUBLIC_KEY
    ghl_accept_rsa_signatures: bool = True
    # True when the app talks to the bundled sandbox instead of HighLevel (no GHL_CLIENT_ID given).
    sandbox_mode: bool = True
    # HTTP client tuning (seconds, counts).
    ghl_timeout: float = 10.0
    ghl_max_retries: int = 3
    ghl_rate_limit: int = 100
    # A contact read before a send that has not answered after this long is asked once more (hedged);
    # 0 turns it off. HighLevel's p90 is around 300 ms: the second ask cuts the tail, not the median.
    ghl_hedge_after: float = 0.3
    ghl_rate_window: float = 10.0
    webhook_max_bytes: int = 256 * 1024
    # The booking agent's optional language model (OpenAI-compatible); unset: the deterministic rules only.
    llm_api_base: str | None = None
    llm_api_key: str = field(default="", repr=False)
    llm_model: str | None = None
    llm_timeout: float = 4.0

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def override(self, **changes: object) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)


def _instance_secret(instance: Path, filename: str, make: Callable[[], str]) -> str:
    """Read a generated secret from instance/, creating it (mode 600) on first use."""
    path = instance / filename
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def load_settings(environ: dict[str, str] | None = None, *, instance_path: str | os.PathLike | None = None) -> Settings:
    """Build Settings from the environment; raise ConfigError naming the first bad variable."""
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value is not None and value.strip() != "" else None

    mode = (get("TEXTBACK_ENV") or "development").strip().lower()
    if mode not in {"development", "production"}:
        raise ConfigError(f"TEXTBACK_ENV must be development or production, got {mode!r}")
    production = mode == "production"

    if production:
        for required in ("SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "GHL_CLIENT_ID", "GHL_CLIENT_SECRET",
                         "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL"):
            if get(required) is None:
                raise ConfigError(f"{required} is required when TEXTBACK_ENV=production")

    instance = Path(instance_path or get("TEXTBACK_INSTANCE_PATH") or Path.cwd() / "instance").resolve()

    default_database = f"sqlite:///{instance / 'textback.db'}"
    database_url = normalize_database_url("DATABASE_URL", get("DATABASE_URL") or default_database)
    redis_url = check_redis_url("REDIS_URL", get("REDIS_URL")) if get("REDIS_URL") else None

    secret_key = get("SECRET_KEY") or _instance_secret(instance, "secret_key", lambda: secrets.token_urlsafe(48))
    if production and len(secret_key) < 32:
        raise ConfigError("SECRET_KEY must be at least 32 characters in production")
    keys_raw = get("TOKEN_ENCRYPTION_KEYS") or _instance_secret(
        instance, "token_encryption_keys", lambda: Fernet.generate_key().decode()
    )
    token_keys = check_fernet_keys("TOKEN_ENCRYPTION_KEYS", keys_raw)

    client_id = get("GHL_CLIENT_ID")
    sandbox_mode = client_id is None
    if sandbox_mode:
        client_id = SANDBOX_CLIENT_ID
        client_secret = get("GHL_CLIENT_SECRET") or SANDBOX_CLIENT_SECRET
        sso_key = get("GHL_SSO_KEY") or SANDBOX_SSO_KEY
        sandbox_base = check_http_url("TEXTBACK_SANDBOX_URL", get("TEXTBACK_SANDBOX_URL") or SANDBOX_DEFAULT_BASE)
        api_base = sandbox_base
        marketplace_base = sandbox_base
    else:
        client_secret = get("GHL_CLIENT_SECRET")
        if client_secret is None:
            raise ConfigError("GHL_CLIENT_SECRET is required when GHL_CLIENT_ID is set")
        sso_key = get("GHL_SSO_KEY")
        if sso_key is None:
            if production:
                raise ConfigError("GHL_SSO_KEY is required when TEXTBACK_ENV=production")
            sso_key = ""
        api_base = DEFAULT_API_BASE
        marketplace_base = DEFAULT_MARKETPLACE_BASE
    api_base = check_http_url("GHL_API_BASE", get("GHL_API_BASE") or api_base)
    marketplace_base = check_http_url("GHL_MARKETPLACE_BASE", get("GHL_MARKETPLACE_BASE") or marketplace_base)

    app_id = get("GHL_APP_ID") or client_id.split("-", 1)[0]
    if len(app_id) != 24 or any(c not in "0123456789abcdefABCDEF" for c in app_id):
        raise ConfigError(f"GHL_APP_ID must be 24 hex characters (GHL_CLIENT_ID's part before '-'), got {app_id!r}")

    if sandbox_mode:
        # The sandbox signs webhooks with its own keys, generated into instance/ and shared with the app.
        from integration.sandbox.keys import sandbox_public_keys

        ed_default, rsa_default = sandbox_public_keys(instance)
    else:
        ed_default, rsa_default = GHL_ED25519_PUBLIC_KEY, GHL_RSA_PUBLIC_KEY

    return Settings(
        env=mode,
        instance_path=str(instance),
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secret_key,
        token_encryption_keys=token_keys,
        public_base_url=check_http_url("PUBLIC_BASE_URL", get("PUBLIC_BASE_URL") or "http://localhost:5000"),
        ghl_client_id=client_id,
        ghl_client_secret=client_secret,
        ghl_app_id=app_id.lower(),
        ghl_sso_key=sso_key,
        ghl_api_base=api_base,
        ghl_marketplace_base=marketplace_base,
        ghl_webhook_ed25519_public_key=check_pem(
            "GHL_WEBHOOK_ED25519_PUBLIC_KEY", get("GHL_WEBHOOK_ED25519_PUBLIC_KEY") or ed_default
        ),
        ghl_webhook_rsa_public_key=check_pem(
            "GHL_WEBHOOK_RSA_PUBLIC_KEY", get("GHL_WEBHOOK_RSA_PUBLIC_KEY") or rsa_default
        ),
        ghl_accept_rsa_signatures=parse_bool("GHL_ACCEPT_RSA_SIGNATURES", get("GHL_ACCEPT_RSA_SIGNATURES"), True),
        sandbox_mode=sandbox_mode,
        ghl_timeout=parse_float("GHL_TIMEOUT_SECONDS", get("GHL_TIMEOUT_SECONDS"), 10.0, minimum=0.1),
        ghl_max_retries=parse_int("GHL_MAX_RETRIES", get("GHL_MAX_RETRIES"), 3),
        ghl_rate_limit=parse_int("GHL_RATE_LIMIT", get("GHL_RATE_LIMIT"), 100, minimum=1),
        ghl_hedge_after=parse_int("GHL_HEDGE_AFTER_MS", get("GHL_HEDGE_AFTER_MS"), 300, maximum=60_000) / 1000,
        ghl_rate_window=parse_float("GHL_RATE_WINDOW_SECONDS", get("GHL_RATE_WINDOW_SECONDS"), 10.0, minimum=0.1),
        webhook_max_bytes=parse_int("WEBHOOK_MAX_BYTES", get("WEBHOOK_MAX_BYTES"), 256 * 1024, minimum=1024),
        llm_api_base=(get("LLM_API_BASE") or "").rstrip("/") or None,
        llm_api_key=get("LLM_API_KEY") or "",
        llm_model=get("LLM_MODEL") or None,
        llm_timeout=parse_float("LLM_TIMEOUT_SECONDS", get("LLM_TIMEOUT_SECONDS"), 4.0, minimum=0.1),
    )
