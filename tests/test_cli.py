"""The `textback` command turns configuration and connection problems into one clear line."""

import os
import subprocess
import sys


def run_cli(*args, env_extra=None, cwd=None):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "integration.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_check_config_bad_value_is_one_line(tmp_path):
    result = run_cli("check-config", env_extra={"GHL_ACCEPT_RSA_SIGNATURES": "maybe"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "textback: GHL_ACCEPT_RSA_SIGNATURES must be true or false, got 'maybe'"
    assert "Traceback" not in result.stderr


def test_production_without_secret_refuses_to_start(tmp_path):
    result = run_cli("check-config", env_extra={"TEXTBACK_ENV": "production"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "textback: SECRET_KEY is required when TEXTBACK_ENV=production"


def test_db_upgrade_unreachable_database_is_one_line(tmp_path):
    result = run_cli("db", "upgrade", env_extra={"DATABASE_URL": "postgresql://nobody:hunter2@127.0.0.1:1/none"},
                     cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textback: database migration failed: OperationalError")
    assert "hunter2" not in result.stderr


def test_db_upgrade_on_sqlite_then_check_config(tmp_path):
    result = run_cli("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "instance" / "textback.db").exists()
    shown = run_cli("check-config", env_extra={"DATABASE_URL": "postgresql://u:hunter2@db/x"}, cwd=tmp_path)
    assert shown.returncode == 0
    assert "hunter2" not in shown.stdout and "postgresql+psycopg://u:***@db/x" in shown.stdout


def _run_worker(tmp_path, **env_extra):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env_extra}
    return subprocess.run([sys.executable, "-m", "workers"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)


def test_worker_with_unreachable_redis_is_one_line(tmp_path):
    result = _run_worker(tmp_path, REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("workers: cannot reach Redis at REDIS_URL (ConnectionError")
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2" not in result.stderr


def test_worker_with_unreachable_database_is_one_line(tmp_path, redis_url):
    result = _run_worker(tmp_path, REDIS_URL=redis_url, DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/x")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("workers: cannot reach the database at DATABASE_URL (OperationalError")
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2" not in result.stderr
