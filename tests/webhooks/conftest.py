"""Webhook test fixtures come from tests/plugins/webhooks.py (shared with other suites)."""

from tests.plugins.webhooks import live_location, sandbox_signing_keys, signed_webhook, throwaway_keys  # noqa: F401
