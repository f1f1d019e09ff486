"""`textback rotate-keys`, run as an operator would: a new key first, the old one after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from integration.models import Installation
from oauth.crypto import TokenCipher

REPO = Path(__file__).resolve().parents[2]


def _run(*args, env_extra, cwd):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env_extra}
    return subprocess.run([sys.executable, "-m", "integration.cli", *args], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(REPO)}, cwd=cwd, timeout=120)


def test_rotate_keys_re_encrypts_every_row_under_the_new_key(database, settings, tmp_path):
    old_key = settings.token_encryption_keys[0]
    old = TokenCipher([old_key])
    with database.transaction() as session:
        for index in range(7):
            session.add(Installation(user_type="Location", resource_id=f"loc{index}", status="active",
                                     access_token_encrypted=old.encrypt(f"access-{index}"),
                                     refresh_token_encrypted=old.encrypt(f"refresh-{index}"),
                                     is_bulk_installation=False))
    new_key = Fernet.generate_key().decode()

    result = _run("rotate-keys", "--batch-size", "3", cwd=tmp_path, env_extra={
        "DATABASE_URL": settings.database_url, "TOKEN_ENCRYPTION_KEYS": f"{new_key},{old_key}"})

    assert result.returncode == 0, result.stderr
    assert "rotated 7" in result.stdout and result.stdout.strip().endswith("complete")
    assert old_key not in result.stdout + result.stderr and new_key not in result.stdout + result.stderr
    only_new = TokenCipher([new_key])
    with database.transaction() as session:
        rows = session.scalars(select(Installation).order_by(Installation.resource_id)).all()
        assert [only_new.decrypt(r.access_token_encrypted) for r in rows] == [f"access-{i}" for i in range(7)]

    again = _run("rotate-keys", cwd=tmp_path, env_extra={
        "DATABASE_URL": settings.database_url, "TOKEN_ENCRYPTION_KEYS": f"{new_key},{old_key}"})
    assert "rotated 0, already current 7" in again.stdout


def test_rotate_keys_with_an_unreachable_database_is_one_line(tmp_path):
    result = _run("rotate-keys", cwd=tmp_path, env_extra={
        "DATABASE_URL": "postgresql://nobody:hunter2@127.0.0.1:1/none",
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "database error" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
