"""Fixtures for the browser tests: the app on a real port wired to the sandbox, `python -m workers` as the
Procfile runs it, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from integration import create_app
from integration.embedded_redis import free_port

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def app_url(sandbox, settings):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(settings.override(public_base_url=url, ghl_api_base=sandbox.url,
                                       ghl_marketplace_base=sandbox.url))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sandbox.configure(webhook_url=f"{url}/webhooks/ghl", redirect_uris=[f"{url}/oauth/callback"],
                      app_page_url=f"{url}/app")
    yield url
    server.shutdown()


@pytest.fixture
def worker(app_url, sandbox, settings):
    """`python -m workers`, as the Procfile runs it, against the test database and Redis."""
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "TEXTBACK_INSTANCE_PATH": settings.instance_path, "PUBLIC_BASE_URL": app_url,
           "TEXTBACK_SANDBOX_URL": sandbox.url, "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "workers"], env=env)
    yield process
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()
