"""What keeps the embedded page safe inside HighLevel's iframe: CSP, session cookies, CSRF.

- Content-Security-Policy on every page we render: scripts, styles and images only from our own origin
  (a per-request nonce for the rare inline script), and `frame-ancestors` naming who may embed us:
  HighLevel's app domains, the agency's white-label domain from its INSTALL webhook, and in sandbox mode
  the sandbox that plays HighLevel.
- The session cookie is third-party inside HighLevel's iframe, so over https it is
  `SameSite=None; Secure; Partitioned` (CHIPS: browsers that block third-party cookies keep a partitioned
  one). Over plain http on a loopback host (local development) browsers refuse `SameSite=None` without
  `Secure`, so it is `Lax` there: the sandbox and the app share the site `localhost`/`127.0.0.1`.
- CSRF: every form POST under /app carries the session's token (`csrf_token()` in templates); the SSO
  exchange is JSON-only, which a cross-site form cannot send without a CORS preflight we never answer.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from urllib.parse import urlsplit

from flask import Flask, abort, g, request, session

from integration.config import Settings

__all__ = ["CSRF_FIELD", "csp_nonce", "csrf_token", "frame_ancestors", "init_app"]

log = logging.getLogger(__name__)

CSRF_FIELD = "csrf"
# HighLevel serves its app under these (app.gohighlevel.com, app.leadconnectorhq.com, regional and
# white-label-by-CNAME hosts under the same parents).
HIGHLEVEL_ANCESTORS = ("https://app.gohighlevel.com", "https://*.gohighlevel.com",
                       "https://app.leadconnectorhq.com", "https://*.leadconnectorhq.com")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_DOMAINS_CACHE_SECONDS = 60
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


# --- CSRF ---


def csrf_token() -> str:
    """This browser session's CSRF token (made on first use; the SSO exchange starts a new session)."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(24)
    return session[CSRF_FIELD]


def _check_csrf() -> None:
    if request.method != "POST" or not (request.path == "/app" or request.path.startswith("/app/")):
        return
    if request.path == "/app/sso":
        if not request.is_json:
            abort(415, description="send JSON {\"encryptedData\": \"...\"}")
        return
    from integration.app_page import current_context

    if current_context() is None:
        abort(401, description="Your HighLevel sign-in has expired: open TextBack again from HighLevel's menu. "
                               "Nothing was saved.")
    sent = request.form.get(CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent, session.get(CSRF_FIELD, "")):
        log.info("app page: POST %s refused (CSRF token missing or stale)", request.path)
        abort(400, description="The form expired; reload the page and try again. Nothing was saved.")


# --- CSP ---


def csp_nonce() -> str:
    """A nonce for an inline <script nonce="..."> in this response (one per request)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def is_hostname(text: str) -> bool:
    return bool(_HOSTNAME.match(text))


def normalize_whitelabel_domain(raw: object) -> str | None:
    """The white-label domain an INSTALL webhook names, as a bare hostname, or None when it is not one."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip().lower()
    host = urlsplit(text if "://" in text else f"https://{text}").hostname or ""
    return host if is_hostname(host) else None


_domains_cache: dict[str, tuple[float, tuple[str, ...]]] = {}


def _whitelabel_domains(company_id: str | None) -> tuple[str, ...]:
    """The agency's white-label domain, or before sign-in (tenant unknown) every agency's: the bootstrap
    page must be framable by whichever agency's domain opens it. Cached briefly: this runs per page."""
    from sqlalchemy import select

    from integration.extensions import db
    from integration.models import Company

    key = company_id or "*"
    cached = _domains_cache.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        with db.session() as s:
            query = select(Company.whitelabel_domain).where(Company.whitelabel_domain.is_not(None))
            if company_id:
                query = query.where(Company.id == company_id)
            domains = tuple(sorted({d for d in s.scalars(query.limit(500)) if d and is_hostname(d)}))
    except Exception as exc:  # a page must render (HighLevel's own domains still apply) if the database hiccups
        log.warning("app page: white-label domains unavailable (%s)", type(exc).__name__)
        domains = ()
    _domains_cache[key] = (time.monotonic() + _DOMAINS_CACHE_SECONDS, domains)
    return domains


def frame_ancestors(settings: Settings, company_id: str | None) -> list[str]:
    """Who may embed our pages."""
    sources = ["'self'", *HIGHLEVEL_ANCESTORS]
    sources += [f"https://{domain}" for domain in _whitelabel_domains(company_id)]
    if settings.sandbox_mode:
        parts = urlsplit(settings.ghl_marketplace_base)
        sources.append(f"{parts.scheme}://{parts.netloc}")
        if parts.hostname in _LOOPBACK_HOSTS:
            # Locally the sandbox may be reached as localhost or 127.0.0.1, on any port (tests pick free ones).
            sources += ["http://localhost:*", "http://127.0.0.1:*"]
    return list(dict.fromkeys(sources))


def _set_csp(response):
    if response.mimetype != "text/html" or "Content-Security-Policy" in response.headers:
        return response
    from integration.extensions import get_settings

    context = session.get("sso") or {}
    nonce = g.get("csp_nonce")
    with_nonce = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    policy = [
        "default-src 'self'",
        f"script-src {with_nonce}",
        f"style-src {with_nonce}",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors " + " ".join(frame_ancestors(get_settings(), context.get("company_id"))),
    ]
    response.headers["Content-Security-Policy"] = "; ".join(policy)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    return response


# --- Cookies ---


def session_cookie_config(public_base_url: str) -> dict[str, object]:
    """Flask's session-cookie settings for where we are served (see the module docstring)."""
    parts = urlsplit(public_base_url)
    if parts.scheme == "https":
        return {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": True,
                "SESSION_COOKIE_PARTITIONED": True, "SESSION_COOKIE_HTTPONLY": True}
    if parts.hostname not in _LOOPBACK_HOSTS:
        log.warning("PUBLIC_BASE_URL %s is plain http on a non-local host: the page will not keep its "
                    "sign-in inside HighLevel's iframe (it needs https)", public_base_url)
    return {"SESSION_COOKIE_SAMESITE": "Lax", "SESSION_COOKIE_SECURE": False,
            "SESSION_COOKIE_PARTITIONED": False, "SESSION_COOKIE_HTTPONLY": True}


def init_app(app: Flask, settings: Settings) -> None:
    app.config.update(session_cookie_config(settings.public_base_url))
    app.before_request(_check_csrf)
    app.after_request(_set_csp)
    app.jinja_env.globals.update(csrf_token=csrf_token, csp_nonce=csp_nonce, csrf_field=CSRF_FIELD)
