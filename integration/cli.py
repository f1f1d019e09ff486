"""The `textback` command: run everything locally, serve the sandbox, migrate, run a worker.

Every command turns a configuration or connection problem into one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys

import click

from integration.config import ConfigError, load_settings

__all__ = ["cli", "main"]


class StartupError(Exception):
    """A problem a person must fix before the service can start; the message says which."""


def friendly_errors(command):
    """Print ConfigError / StartupError as one line and exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ConfigError, StartupError) as exc:
            click.echo(f"textback: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
def cli() -> None:
    """TextBack for HighLevel."""


@cli.command()
@click.option("--port", default=5000, show_default=True, help="Port of the app (web).")
@click.option("--sandbox-port", default=5001, show_default=True, help="Port of the simulated HighLevel.")
@click.option("--web-workers", default=2, show_default=True, help="gunicorn worker processes.")
@friendly_errors
def run(port: int, sandbox_port: int, web_workers: int) -> None:
    """Run web + worker + sandbox until Ctrl-C (SQLite and an embedded Redis unless configured)."""
    from integration.devserver import run_all

    run_all(port=port, sandbox_port=sandbox_port, web_workers=web_workers)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True)
@click.option("--webhook-url", default=None, help="Where to deliver webhooks (default: PUBLIC_BASE_URL/webhooks/ghl).")
@click.option("--latency", envvar="SANDBOX_LATENCY", default="off", show_default=True,
              help="API answer delay like HighLevel's: off, highlevel (median 150, p95 400, p99 1000 ms), or "
                   "median=..,p95=..,p99=..[,max=..][,seed=..] in ms (env SANDBOX_LATENCY).")
@friendly_errors
def sandbox(host: str, port: int, webhook_url: str | None, latency: str) -> None:
    """Serve the simulated HighLevel (OAuth, API, webhooks, UI)."""
    from integration.sandbox.latency import LatencyError, parse_latency
    from integration.sandbox.server import serve

    try:
        latency_model = parse_latency(latency)
    except LatencyError as exc:
        raise click.BadParameter(str(exc), param_hint="--latency / SANDBOX_LATENCY") from None

    settings = load_settings()
    serve(
        host=host,
        port=port,
        instance_path=settings.instance_path,
        app_webhook_url=webhook_url or f"{settings.public_base_url}/webhooks/ghl",
        app_redirect_uris=[f"{settings.public_base_url}/oauth/callback"],
        client_id=settings.ghl_client_id,
        client_secret=settings.ghl_client_secret,
        app_page_url=f"{settings.public_base_url}/app",
        sso_key=settings.ghl_sso_key,
        latency=latency_model,
    )


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@friendly_errors
def db_upgrade(revision: str) -> None:
    """Apply migrations (the Procfile's release phase)."""
    from integration.migrate import upgrade

    settings = load_settings()
    try:
        upgrade(settings.database_url, revision)
    except Exception as exc:
        raise StartupError(f"database migration failed: {describe_connection_error(exc)}") from None
    click.echo("database is up to date")


@cli.command()
@friendly_errors
def worker() -> None:
    """Run an RQ worker with the scheduler (same as `python -m workers`)."""
    from workers.__main__ import main as worker_main

    sys.exit(worker_main())


@cli.command("check-config")
@friendly_errors
def check_config() -> None:
    """Validate the configuration and say what the service would connect to (no secrets shown)."""
    settings = load_settings()
    click.echo(f"env={settings.env} sandbox_mode={settings.sandbox_mode}")
    click.echo(f"database={redact_url(settings.database_url)}")
    click.echo(f"redis={redact_url(settings.redis_url) if settings.redis_url else '(embedded for local runs)'}")
    click.echo(f"highlevel_api={settings.ghl_api_base} public_base_url={settings.public_base_url}")


def redact_url(url: str) -> str:
    """Hide the password of a connection URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}" if "@" in rest else url


def describe_connection_error(exc: BaseException) -> str:
    """One line about a database/Redis failure, without the URL's password or a traceback."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    return f"{type(original).__name__}: {text}"[:300]


def _register_capability_commands() -> None:
    """Commands owned by other packages (imported lazily so `textback --help` stays fast and safe)."""
    try:
        from oauth.cli import rotate_keys
    except ImportError:  # the OAuth capability is not present in this build
        return
    cli.add_command(rotate_keys)


def main() -> None:
    _register_capability_commands()
    # .env is read in development only; production takes its environment from the platform.
    if os.environ.get("TEXTBACK_ENV", "development") != "production":
        from dotenv import load_dotenv

        load_dotenv(".env", override=False)
    cli(prog_name="textback")


if __name__ == "__main__":
    main()
