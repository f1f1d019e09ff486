"""The TokenProvider the API client uses: stored tokens, refreshed lazily and never lost.

HighLevel's refresh tokens are single-use: using one kills it and returns a new pair. Two
processes refreshing the same installation at once would burn it, so a refresh:

1. takes a per-installation Redis lock (shared by every process),
2. re-reads the row after taking the lock (another process may have refreshed meanwhile),
3. calls HighLevel only if the token is still stale (or is the very token HighLevel just rejected),
4. persists the new pair, conditionally on the old refresh token still being the stored one (the
   second guard, should the lock ever expire under a very slow refresh), before anyone uses it.

A refresh HighLevel rejects marks the installation `needs_reconnect` instead of retrying. Location
tokens minted from an agency's Company token have no refresh token of their own: they are re-minted
from the company token (`POST /oauth/locationToken`) when they expire.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import LockError, RedisError
from sqlalchemy import update

from integration import metrics
from integration.db import Database, utcnow
from integration.ghl.errors import (
    GHLError,
    GHLForbidden,
    GHLNotFound,
    GHLUnauthorized,
    GHLValidationError,
    OAuthError,
)
from integration.models import Installation
from oauth.errors import (
    InstallationInactive,
    InstallationNotFound,
    NeedsReconnect,
    TokenDecryptError,
    TokenRefreshUnavailable,
    TokenRejected,
    TokenUnavailable,
)
from oauth.installation import LOCATION, MalformedTokenResponse, TokenGrant
from oauth.models import AgencyInstall
from oauth.store import ACTIVE, NEEDS_RECONNECT, InstallationStore, installations_with_state, uninstall_waiting

__all__ = ["InstallationTokenProvider"]

log = logging.getLogger(__name__)

# HighLevel refused the refresh or the mint itself (as opposed to being down): retrying cannot help.
_REJECTIONS = (OAuthError, GHLUnauthorized, GHLForbidden, GHLNotFound, GHLValidationError)


@dataclass(frozen=True)
class _Snapshot:
    """One installation row as read, with its tokens decrypted (in memory only, never logged)."""

    row_id: int
    user_type: str
    resource_id: str
    company_id: str | None
    location_id: str | None
    access_ct: str | None = field(repr=False)
    refresh_ct: str | None = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    last_refreshed_at: datetime | None


class InstallationTokenProvider:
    """Implements integration.ghl.tokens.TokenProvider over the installation store.

    Args:
        database: the configured Database.
        redis: the Redis every process shares (for the refresh lock).
        store: the InstallationStore (and through it the TokenCipher).
        client: the GHLClient used to refresh and mint; may be attached later with `attach_client`
            (the client needs this provider for the company token when it mints).
        refresh_margin: refresh this long before the stored expiry.
        lock_timeout: seconds after which a lock whose holder died is released. Longer than the
            slowest refresh (client timeout x retries), so a live refresh never loses its lock.
        lock_wait: seconds a caller waits for another process's refresh before giving up (retryable).
        reuse_seconds: hand out a token read this recently again without reading the database (0: always read).
            A busy worker asked for the same location's token several times a second, and each read (the row,
            the location's state, an UNINSTALL waiting) was a seventh of a text's CPU. Safe for a few seconds:
            the send re-checks the installation in the database right before the API call, a 401 drops the
            reused token, and a refresh by this process replaces it.
        clock: returns the current UTC time.
    """

    def __init__(
        self,
        *,
        database: Database,
        redis: Redis,
        store: InstallationStore,
        client=None,
        refresh_margin: timedelta = timedelta(minutes=5),
        lock_timeout: float = 120.0,
        lock_wait: float = 30.0,
        reuse_seconds: float = 0.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.redis = redis
        self.store = store
        self.client = client
        self.refresh_margin = refresh_margin
        self.lock_timeout = lock_timeout
        self.lock_wait = lock_wait
        self.reuse_seconds = reuse_seconds
        self.clock = clock
        # resource id -> (time.monotonic() of the read, access token); see reuse_seconds.
        self._recent: dict[str, tuple[float, str]] = {}

    def __repr__(self) -> str:
        return "InstallationTokenProvider()"

    def attach_client(self, client) -> None:
        self.client = client

    # --- TokenProvider protocol ---

    def access_token(self, resource_id: str) -> str:
        """A current access token for a location or company; refreshes first when it is about to expire.

        Raises:
            InstallationNotFound, InstallationInactive, NeedsReconnect: no call may be made.
            TokenRefreshUnavailable: a refresh was needed and could not be done now (retry later).
        """
        if self.reuse_seconds > 0:
            recent = self._recent.get(resource_id)
            if recent is not None and time.monotonic() - recent[0] < self.reuse_seconds:
                return recent[1]
        snapshot = self._read(resource_id)
        token = snapshot.access_token if self._fresh(snapshot) else \
            self._refresh_under_lock(resource_id, rejected_token=None)
        if self.reuse_seconds > 0:
            self._recent[resource_id] = (time.monotonic(), token)
        return token

    def refresh_after_unauthorized(self, resource_id: str, rejected_token: str) -> str:
        """HighLevel answered 401 to `rejected_token`: refresh, unless another caller already did."""
        self._recent.pop(resource_id, None)
        return self._refresh_under_lock(resource_id, rejected_token=rejected_token)

    # --- For jobs ---

    def refresh_if_idle(self, resource_id: str, *, idle_for: timedelta) -> bool:
        """Refresh when the installation was last refreshed more than `idle_for` ago. True when it refreshed.

        A refresh token unused for a year dies; the periodic job calls this well before that.
        """
        snapshot = self._read(resource_id)
        if not self._idle(snapshot, idle_for):
            return False
        with self._refresh_lock(resource_id) as acquired:
            if not acquired:
                raise TokenRefreshUnavailable("another process holds the refresh lock", resource_id=resource_id)
            snapshot = self._read(resource_id)
            if not self._idle(snapshot, idle_for):
                return False
            self._refresh(snapshot)
            return True

    # --- Internals: reading ---

    def _read(self, resource_id: str) -> _Snapshot:
        # A read session (no BEGIN / COMMIT): this runs before every API call.
        with self.database.session() as session:
            rows = installations_with_state(session, resource_id)
            if not rows:
                raise InstallationNotFound(f"no installation for {resource_id}", resource_id=resource_id)
            row = rows[0]
            self._check_usable(session, row)
        try:
            access = self.store.access_token_of(row)
            refresh = self.store.refresh_token_of(row)
        except TokenDecryptError:
            reason = "a stored token cannot be decrypted with the configured keys; reinstall the app"
            with self.database.transaction() as session:
                # Only the pair we failed on: one stored meanwhile (a reinstall) is not condemned.
                self.store.mark_needs_reconnect(session, row.id, reason, resource=f"{row.user_type} {resource_id}",
                                                only_if_tokens=(row.access_token_encrypted,
                                                                row.refresh_token_encrypted))
            raise NeedsReconnect(reason, resource_id=resource_id) from None
        return _Snapshot(
            row_id=row.id, user_type=row.user_type, resource_id=row.resource_id, company_id=row.company_id,
            location_id=row.location_id, access_ct=row.access_token_encrypted,
            refresh_ct=row.refresh_token_encrypted, access_token=access, refresh_token=refresh,
            expires_at=row.expires_at, last_refreshed_at=row.last_refreshed_at,
        )

    def _check_usable(self, session, row) -> None:
        """Refuse uninstalled resources (including an UNINSTALL still waiting in the inbox). `row`: one of
        oauth.store.installations_with_state."""
        resource_id = row.resource_id
        if row.status == NEEDS_RECONNECT:
            raise NeedsReconnect(row.status_reason or "the installation needs reconnecting", resource_id=resource_id)
        if row.status != ACTIVE or row.access_token_encrypted is None:
            raise InstallationInactive(f"the app is not installed for {resource_id}", resource_id=resource_id)
        if row.user_type == LOCATION:
            # The location's state came with the row (one statement: this runs before every API call).
            if row.location_status is not None and row.location_status != "installed":
                raise InstallationInactive(f"the app is not installed for {resource_id}", resource_id=resource_id)
            if row.location_status is not None:
                waiting = bool(row.uninstall_waiting)
            else:
                waiting = uninstall_waiting(session, location_id=resource_id, company_id=row.company_id,
                                            since=row.created_at)
            if waiting:
                raise InstallationInactive(f"an UNINSTALL for {resource_id} is being processed",
                                           resource_id=resource_id)
        else:
            agency = session.get(AgencyInstall, resource_id)
            if agency is not None and agency.status != "installed":
                raise InstallationInactive(f"the app is not installed for {resource_id}", resource_id=resource_id)
            since = agency.installed_at if agency is not None else row.created_at
            if uninstall_waiting(session, location_id=None, company_id=resource_id, since=since):
                raise InstallationInactive(f"an UNINSTALL for {resource_id} is being processed",
                                           resource_id=resource_id)

    def _fresh(self, snapshot: _Snapshot) -> bool:
        # Unknown expiry: use the token and let a 401 drive the refresh.
        return snapshot.expires_at is None or snapshot.expires_at - self.clock() > self.refresh_margin

    def _idle(self, snapshot: _Snapshot, idle_for: timedelta) -> bool:
        if snapshot.refresh_token is None and not (snapshot.user_type == LOCATION and snapshot.company_id):
            return False
        last = snapshot.last_refreshed_at
        return last is None or self.clock() - last > idle_for

    # --- Internals: the lock ---

    def _refresh_lock(self, resource_id: str):
        return _RedisLock(self.redis, f"textback:oauth:refresh:{resource_id}", timeout=self.lock_timeout,
                          wait=self.lock_wait)

    def _refresh_under_lock(self, resource_id: str, *, rejected_token: str | None) -> str:
        with self._refresh_lock(resource_id) as acquired:
            snapshot = self._read(resource_id)  # re-read: another process may have refreshed meanwhile
            if self._refreshed_by_someone_else(snapshot, rejected_token):
                return snapshot.access_token
            if not acquired:
                raise TokenRefreshUnavailable(
                    f"timed out after {self.lock_wait:g}s waiting for another refresh of {resource_id}",
                    resource_id=resource_id)
            if rejected_token is not None and self._just_issued(resource_id, rejected_token):
                raise TokenRejected(
                    f"HighLevel rejects the token issued for {resource_id} moments ago (a missing scope or revoked "
                    "access, not expiry)", resource_id=resource_id)
            with metrics.token_refresh(snapshot.user_type):
                token = self._refresh(snapshot)
            self._remember_issued(resource_id, token)
            return token

    # A refresh forced by a 401 is done at most once per token: if HighLevel rejects the token we just
    # got, the problem is not expiry. The marker is a truncated hash, never the token.
    _JUST_ISSUED_SECONDS = 60

    def _token_marker(self, token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()[:24]

    def _remember_issued(self, resource_id: str, token: str) -> None:
        try:
            self.redis.set(f"textback:oauth:issued:{resource_id}", self._token_marker(token),
                           ex=self._JUST_ISSUED_SECONDS)
        except RedisError:
            log.warning("could not record the refresh of %s in Redis", resource_id)

    def _just_issued(self, resource_id: str, token: str) -> bool:
        try:
            marker = self.redis.get(f"textback:oauth:issued:{resource_id}")
        except RedisError:
            return False
        return marker is not None and marker.decode() == self._token_marker(token)

    def _refreshed_by_someone_else(self, snapshot: _Snapshot, rejected_token: str | None) -> bool:
        if rejected_token is None:
            return self._fresh(snapshot)
        return snapshot.access_token != rejected_token and self._fresh(snapshot)

    # --- Internals: refreshing (called with the lock held) ---

    def _refresh(self, snapshot: _Snapshot) -> str:
        if self.client is None:
            raise RuntimeError("InstallationTokenProvider has no client attached")
        if snapshot.refresh_token is not None:
            return self._rotate(snapshot)
        if snapshot.user_type == LOCATION and snapshot.company_id:
            return self._remint(snapshot)
        reason = "the stored token cannot be renewed (no refresh token); reinstall the app"
        self._mark_needs_reconnect(snapshot, reason)
        raise NeedsReconnect(reason, resource_id=snapshot.resource_id)

    def _rotate(self, snapshot: _Snapshot) -> str:
        started = time.monotonic()
        try:
            answer = self.client.refresh_access_token(snapshot.refresh_token, user_type=snapshot.user_type)
        except _REJECTIONS as exc:
            return self._after_rejected_refresh(snapshot, exc)
        except GHLError as exc:
            if exc.is_ambiguous:
                # HighLevel may have rotated and we never saw the answer; if so the next attempt is
                # rejected and the installation is marked needs_reconnect (it cannot be recovered).
                log.warning("refresh for %s %s failed ambiguously (%s); the refresh token may be spent",
                            snapshot.user_type, snapshot.resource_id, exc)
            raise TokenRefreshUnavailable(f"HighLevel could not refresh the token now: {exc}",
                                          resource_id=snapshot.resource_id) from exc
        log.info("refreshed the %s token for %s in %.2fs", snapshot.user_type, snapshot.resource_id,
                 time.monotonic() - started)
        grant = self._grant_from(answer, snapshot)
        return self._persist(snapshot, grant, keep_refresh_token=True)

    def _after_rejected_refresh(self, snapshot: _Snapshot, exc: GHLError) -> str:
        description = f"{getattr(exc, 'error_description', None) or exc.message}"
        if "client credentials" in description.lower():
            # Our configuration is wrong, not this installation: do not mark every tenant broken.
            log.error("HighLevel rejected our client credentials while refreshing %s: check GHL_CLIENT_ID/SECRET",
                      snapshot.resource_id)
            raise TokenRefreshUnavailable("HighLevel rejected the app's client credentials",
                                          resource_id=snapshot.resource_id) from exc
        # Another process may have rotated the pair (e.g. its lock expired mid-refresh): if the stored
        # refresh token changed, theirs is the live one.
        try:
            current = self._read(snapshot.resource_id)
        except TokenUnavailable:
            raise NeedsReconnect("the installation changed while refreshing", resource_id=snapshot.resource_id) \
                from exc
        if current.refresh_token != snapshot.refresh_token:
            log.info("refresh for %s was rejected but another process had already rotated it; using theirs",
                     snapshot.resource_id)
            return current.access_token
        reason = f"HighLevel rejected the token refresh ({description}); reinstall the app to reconnect"
        if not self._mark_needs_reconnect(snapshot, reason):
            # The row changed between our re-read and the mark: someone stored a new pair. Use it.
            return self._read(snapshot.resource_id).access_token
        raise NeedsReconnect(reason, resource_id=snapshot.resource_id) from exc

    def _remint(self, snapshot: _Snapshot) -> str:
        try:
            answer = self.client.location_token(snapshot.company_id, snapshot.location_id)
        except TokenRefreshUnavailable:
            raise
        except TokenUnavailable as exc:
            reason = f"the agency connection cannot issue a token for this sub-account ({exc}); reinstall the app"
            self._mark_needs_reconnect(snapshot, reason)
            raise NeedsReconnect(reason, resource_id=snapshot.resource_id) from exc
        except _REJECTIONS as exc:
            reason = f"HighLevel refused to issue a token for this sub-account ({exc.message}); reinstall the app"
            self._mark_needs_reconnect(snapshot, reason)
            raise NeedsReconnect(reason, resource_id=snapshot.resource_id) from exc
        except GHLError as exc:
            raise TokenRefreshUnavailable(f"HighLevel could not issue a location token now: {exc}",
                                          resource_id=snapshot.resource_id) from exc
        log.info("re-minted the Location token for %s from company %s", snapshot.resource_id, snapshot.company_id)
        grant = self._grant_from(answer, snapshot)
        return self._persist(snapshot, grant, keep_refresh_token=False)

    def _grant_from(self, answer: dict, snapshot: _Snapshot) -> TokenGrant:
        # Refresh and mint answers may omit ids we already know; ours fill the gaps, theirs must agree.
        merged = dict(answer)
        for key, known in (("companyId", snapshot.company_id), ("locationId", snapshot.location_id)):
            if not merged.get(key) and known:
                merged[key] = known
        try:
            grant = TokenGrant.from_response(merged, now=self.clock(), expected_user_type=snapshot.user_type)
        except MalformedTokenResponse as exc:
            reason = f"HighLevel's token answer was unusable ({exc}); reinstall the app"
            self._mark_needs_reconnect(snapshot, reason)
            raise NeedsReconnect(reason, resource_id=snapshot.resource_id) from exc
        if grant.resource_id != snapshot.resource_id:
            reason = "HighLevel answered with a token for another account; reinstall the app"
            self._mark_needs_reconnect(snapshot, reason)
            raise NeedsReconnect(reason, resource_id=snapshot.resource_id)
        return grant

    def _persist(self, snapshot: _Snapshot, grant: TokenGrant, *, keep_refresh_token: bool) -> str:
        """Store the new pair, conditional on the row still holding the tokens we refreshed from.

        Returns the access token callers should use: ours, or (if the row was replaced meanwhile, by a
        reinstall for example) the stored one.
        """
        cipher = self.store.cipher
        new_access_ct = cipher.encrypt(grant.access_token)
        new_refresh_ct = cipher.encrypt_optional(grant.refresh_token if keep_refresh_token else None)
        for _ in range(3):
            now = self.clock()
            with self.database.transaction() as session:
                result = session.execute(
                    update(Installation)
                    .where(
                        Installation.id == snapshot.row_id,
                        # Not conditional on the status: if a loser of a (lock-expired) race marked the
                        # row needs_reconnect while still holding the old pair, our valid new pair wins.
                        # An uninstalled row holds no tokens, so it never matches.
                        _same(Installation.access_token_encrypted, snapshot.access_ct),
                        _same(Installation.refresh_token_encrypted, snapshot.refresh_ct),
                    )
                    .values(access_token_encrypted=new_access_ct, refresh_token_encrypted=new_refresh_ct,
                            expires_at=grant.expires_at, scope=grant.scope or None, last_refreshed_at=now,
                            status=ACTIVE, status_reason=None, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:
                    return grant.access_token
            current = self._read(snapshot.resource_id)
            if (current.access_token, current.refresh_token) == (snapshot.access_token, snapshot.refresh_token):
                # Same tokens, new ciphertexts: `rotate-keys` re-encrypted the row. Retry against them.
                snapshot = replace(snapshot, access_ct=current.access_ct, refresh_ct=current.refresh_ct)
                continue
            log.warning("installation %s %s was rewritten while refreshing; keeping the stored tokens",
                        snapshot.user_type, snapshot.resource_id)
            return current.access_token
        raise TokenRefreshUnavailable("could not store the refreshed token (the row kept changing)",
                                      resource_id=snapshot.resource_id)

    def _mark_needs_reconnect(self, snapshot: _Snapshot, reason: str) -> bool:
        """Mark the row, but only if it still holds the tokens we tried: never condemn a pair someone just stored."""
        with self.database.transaction() as session:
            return self.store.mark_needs_reconnect(
                session, snapshot.row_id, reason, resource=f"{snapshot.user_type} {snapshot.resource_id}",
                only_if_tokens=(snapshot.access_ct, snapshot.refresh_ct))


class _RedisLock:
    """`with _RedisLock(...) as acquired:` around redis-py's Lock; never raises on release.

    `acquired` is False when the wait ran out (the caller re-reads: the holder has usually finished).
    A Redis outage raises TokenRefreshUnavailable: without the lock a refresh is not safe.
    """

    def __init__(self, redis: Redis, name: str, *, timeout: float, wait: float) -> None:
        self._lock = redis.lock(name, timeout=timeout, blocking=True, blocking_timeout=wait, sleep=0.05)
        self._name = name
        self._acquired = False

    def __enter__(self) -> bool:
        try:
            self._acquired = bool(self._lock.acquire())
        except RedisError as exc:
            raise TokenRefreshUnavailable(f"the refresh lock is unavailable ({type(exc).__name__})") from exc
        return self._acquired

    def __exit__(self, *exc_info) -> None:
        if not self._acquired:
            return
        try:
            self._lock.release()
        except LockError:
            log.warning("refresh lock %s expired before release; the conditional update guarded the write", self._name)
        except RedisError as exc:
            log.warning("could not release refresh lock %s (%s); it expires by itself", self._name,
                        type(exc).__name__)


def _same(column, value):
    return column.is_(None) if value is None else column == value
