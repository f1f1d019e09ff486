"""Tokens at rest: MultiFernet encryption with rotatable keys, and the resumable re-encryption job.

Key rotation procedure (reliability-catalogue §1.10): put the new key first in
TOKEN_ENCRYPTION_KEYS (the first key encrypts, every key decrypts), run `textback rotate-keys`
until it reports nothing left to rotate, then drop the old key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import or_, select, update

from integration.db import Database
from integration.models import Installation
from oauth.errors import TokenDecryptError

__all__ = ["RotationReport", "StoredTokenCheck", "TokenCipher", "check_stored_tokens", "rotate_all"]

log = logging.getLogger(__name__)


class TokenCipher:
    """Encrypts and decrypts token strings. The first key encrypts; all keys decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("TokenCipher needs at least one Fernet key")
        fernets = [Fernet(key.encode() if isinstance(key, str) else key) for key in keys]
        self._primary = fernets[0]
        self._all = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "TokenCipher(keys=[redacted])"

    @classmethod
    def from_settings(cls, settings) -> TokenCipher:
        """Build from `settings.token_encryption_keys` (validated by integration.config)."""
        return cls(settings.token_encryption_keys)

    def encrypt(self, plaintext: str) -> str:
        return self._all.encrypt(plaintext.encode()).decode()

    def encrypt_optional(self, plaintext: str | None) -> str | None:
        return None if plaintext is None else self.encrypt(plaintext)

    def decrypt(self, ciphertext: str) -> str:
        """The token in clear; TokenDecryptError (never quoting the ciphertext) when no key fits."""
        try:
            return self._all.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, ValueError, TypeError):
            raise TokenDecryptError("a stored token does not decrypt with any configured key") from None

    def decrypt_optional(self, ciphertext: str | None) -> str | None:
        return None if ciphertext is None else self.decrypt(ciphertext)

    def is_current(self, ciphertext: str) -> bool:
        """True when the ciphertext is already under the first (encrypting) key."""
        try:
            self._primary.decrypt(ciphertext.encode())
        except (InvalidToken, ValueError, TypeError):
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first key (keeps Fernet's timestamp). TokenDecryptError when no key fits."""
        try:
            return self._all.rotate(ciphertext.encode()).decode()
        except (InvalidToken, ValueError, TypeError):
            raise TokenDecryptError("a stored token does not decrypt with any configured key") from None


@dataclass(frozen=True)
class StoredTokenCheck:
    """Whether the configured keys read the stored tokens: how many installations were tried, which failed."""

    checked: int
    undecryptable: tuple[int, ...]

    @property
    def none_decrypt(self) -> bool:
        """Every installation tried failed: the key set is wrong (replaced instead of rotated), not one row."""
        return self.checked > 0 and len(self.undecryptable) == self.checked


def check_stored_tokens(database: Database, cipher: TokenCipher, *, sample: int = 50) -> StoredTokenCheck:
    """Decrypt the tokens of the `sample` most recently updated installations that hold any.

    For start-up: a key removed before `textback rotate-keys` finished, or a TOKEN_ENCRYPTION_KEYS replaced
    by a fresh one, otherwise shows only as every HighLevel call failing, event after event.
    """
    with database.session() as session:
        rows = session.execute(
            select(Installation.id, Installation.access_token_encrypted, Installation.refresh_token_encrypted)
            .where(or_(Installation.access_token_encrypted.is_not(None),
                       Installation.refresh_token_encrypted.is_not(None)))
            .order_by(Installation.updated_at.desc(), Installation.id.desc())
            .limit(sample)
        ).all()
    undecryptable = []
    for row in rows:
        try:
            cipher.decrypt_optional(row.access_token_encrypted)
            cipher.decrypt_optional(row.refresh_token_encrypted)
        except TokenDecryptError:
            undecryptable.append(row.id)
    return StoredTokenCheck(checked=len(rows), undecryptable=tuple(undecryptable))


@dataclass
class RotationReport:
    """What one `rotate_all` run did. `undecryptable` rows keep their ciphertext and need attention."""

    scanned: int = 0
    rotated: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0
    undecryptable: list[int] | None = None

    @property
    def complete(self) -> bool:
        """True when every row is now under the first key (nothing changed under us, nothing unreadable)."""
        return self.changed_meanwhile == 0 and not self.undecryptable


def rotate_all(
    database: Database,
    cipher: TokenCipher,
    *,
    batch_size: int = 100,
    after_batch: Callable[[int, RotationReport], None] | None = None,
) -> RotationReport:
    """Re-encrypt every installation's tokens under the first key, one committed batch at a time.

    Resumable: a row already under the first key is skipped, so a run killed part way through is
    finished by running it again. Safe alongside token refreshes: each row is rewritten only if its
    ciphertexts are unchanged since they were read (a refresh writes under the first key anyway).

    Args:
        database: the configured Database.
        cipher: a TokenCipher whose first key is the new key and which still holds the old keys.
        batch_size: rows per transaction.
        after_batch: called with (last row id, report so far) after each committed batch.
    """
    report = RotationReport(undecryptable=[])
    last_id = 0
    while True:
        with database.transaction() as session:
            rows = session.execute(
                select(Installation.id, Installation.access_token_encrypted, Installation.refresh_token_encrypted)
                .where(Installation.id > last_id)
                .order_by(Installation.id)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            for row_id, access_ct, refresh_ct in rows:
                report.scanned += 1
                _rotate_row(session, cipher, report, row_id=row_id, access_ct=access_ct, refresh_ct=refresh_ct)
            last_id = rows[-1][0]
        if after_batch is not None:
            after_batch(last_id, report)
    log.info(
        "token key rotation: scanned=%d rotated=%d already_current=%d changed_meanwhile=%d undecryptable=%d",
        report.scanned, report.rotated, report.already_current, report.changed_meanwhile, len(report.undecryptable),
    )
    return report


def _rotate_row(session, cipher: TokenCipher, report: RotationReport, *, row_id: int,
                access_ct: str | None, refresh_ct: str | None) -> None:
    pending = [ct for ct in (access_ct, refresh_ct) if ct is not None and not cipher.is_current(ct)]
    if not pending:
        report.already_current += 1
        return
    try:
        new_access = cipher.rotate(access_ct) if access_ct and not cipher.is_current(access_ct) else access_ct
        new_refresh = cipher.rotate(refresh_ct) if refresh_ct and not cipher.is_current(refresh_ct) else refresh_ct
    except TokenDecryptError:
        log.error("token key rotation: installation %d has a token no configured key can decrypt", row_id)
        report.undecryptable.append(row_id)
        return
    result = session.execute(
        update(Installation)
        .where(
            Installation.id == row_id,
            _same(Installation.access_token_encrypted, access_ct),
            _same(Installation.refresh_token_encrypted, refresh_ct),
        )
        .values(access_token_encrypted=new_access, refresh_token_encrypted=new_refresh)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        report.rotated += 1
    else:
        # A refresh or uninstall rewrote the row meanwhile; what it wrote is under the first key.
        report.changed_meanwhile += 1


def _same(column, value):
    return column.is_(None) if value is None else column == value
