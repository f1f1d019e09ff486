"""Marketplace installs and tokens: consent flow, encrypted installation store, locked token refresh.

Entry points: `oauth.services.get_oauth()` (the wired collaborators, including an API client that uses
stored tokens), `oauth.store.is_location_active(session, location_id)` (check before any API call),
`oauth.views.bp` (/oauth/install, /oauth/callback), `oauth.events` (INSTALL/UNINSTALL handlers),
`oauth.jobs` (periodic maintenance) and `oauth.cli.rotate_keys` (`textback rotate-keys`).
"""
