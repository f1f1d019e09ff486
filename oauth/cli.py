"""`textback rotate-keys`: re-encrypt every stored token under the first TOKEN_ENCRYPTION_KEYS key."""

from __future__ import annotations

import sys

import click
from sqlalchemy.exc import SQLAlchemyError

from integration.config import ConfigError, load_settings
from integration.db import Database
from oauth.crypto import TokenCipher, rotate_all

__all__ = ["rotate_keys"]


@click.command("rotate-keys")
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows re-encrypted per transaction.")
def rotate_keys(batch_size: int) -> None:
    """Re-encrypt every token under the first key of TOKEN_ENCRYPTION_KEYS.

    Put the new key first, keep the old ones after it, run this until it reports "complete", then
    remove the old keys. Safe to interrupt and run again: rows already under the new key are skipped.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"textback: {exc}", err=True)
        sys.exit(2)
    database = Database()
    database.configure(settings.database_url)
    try:
        report = rotate_all(
            database, TokenCipher.from_settings(settings), batch_size=batch_size,
            after_batch=lambda last_id, r: click.echo(f"  ... up to installation {last_id}: {r.rotated} rotated"),
        )
    except SQLAlchemyError as exc:
        # One line, no URL (it may hold a password): what was committed stays rotated; run again.
        click.echo(f"textback: key rotation stopped, database error ({type(exc).__name__}); "
                   "batches already done stay done, run the command again", err=True)
        sys.exit(2)
    finally:
        database.dispose()
    click.echo(f"scanned {report.scanned}, rotated {report.rotated}, already current {report.already_current}, "
               f"changed meanwhile {report.changed_meanwhile}, undecryptable {len(report.undecryptable)}")
    if report.undecryptable:
        click.echo("installations whose tokens no configured key decrypts (they need reinstalling): "
                   + ", ".join(str(i) for i in report.undecryptable), err=True)
        sys.exit(1)
    click.echo("complete" if report.complete else "run again to finish (rows changed during the run)")
