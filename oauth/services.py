"""Wiring: one set of OAuth collaborators per app (web or worker), built on first use.

Other capabilities get their API client here: `get_oauth().client` is a GHLClient whose token
provider is the InstallationTokenProvider, so every call uses (and refreshes) stored tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from flask import Flask, current_app

from integration.db import Database
from integration.extensions import db, get_redis, get_settings
from integration.ghl.client import GHLClient, client_from_settings
from oauth.crypto import TokenCipher
from oauth.install_wait import wake_waiting_events
from oauth.provisioning import Provisioner
from oauth.state import OAuthStateStore
from oauth.store import InstallationStore
from oauth.tokens import InstallationTokenProvider

__all__ = ["OAuthServices", "build_oauth_services", "get_oauth"]

_EXTENSION_KEY = "textback.oauth"


@dataclass(frozen=True)
class OAuthServices:
    """Everything the install flow, the jobs and the API callers share."""

    database: Database
    cipher: TokenCipher
    store: InstallationStore
    states: OAuthStateStore
    tokens: InstallationTokenProvider
    client: GHLClient
    provisioner: Provisioner
    # Runs the events waiting for these locations' installs; call after committing their tokens (oauth.install_wait).
    wake_waiting_events: Callable[[list[str]], int]


def build_oauth_services(settings, *, database: Database, redis, client: GHLClient | None = None) -> OAuthServices:
    """Build the collaborators from Settings (tests may pass their own client)."""
    cipher = TokenCipher.from_settings(settings)
    store = InstallationStore(cipher)
    tokens = InstallationTokenProvider(database=database, redis=redis, store=store,
                                       lock_timeout=max(120.0, settings.ghl_timeout * (settings.ghl_max_retries + 2)))
    if client is None:
        client = client_from_settings(settings, token_provider=tokens, redis=redis)
    elif client.token_provider is None:
        client.token_provider = tokens
    tokens.attach_client(client)
    wake = partial(wake_waiting_events, database, redis)
    provisioner = Provisioner(database=database, store=store, client=client, app_id=settings.ghl_app_id,
                              on_location_live=wake)
    return OAuthServices(database=database, cipher=cipher, store=store, states=OAuthStateStore(database),
                         tokens=tokens, client=client, provisioner=provisioner, wake_waiting_events=wake)


def get_oauth(app: Flask | None = None) -> OAuthServices:
    """The app's OAuthServices, built once per app."""
    app = app or current_app._get_current_object()
    services = app.extensions.get(_EXTENSION_KEY)
    if services is None:
        services = build_oauth_services(get_settings(app), database=db, redis=get_redis(app))
        app.extensions[_EXTENSION_KEY] = services
    return services
