"""Prometheus counters and histograms: every metric the app records, its bounded labels, and how the many processes
of a deployment add up to one /metrics.

Recording. Each fact is recorded where it is known, by one call into this module (`webhook_answered`,
`ghl_request`, `text_sent`, ...). Label values are always from a fixed set: an event type we subscribe to or
"other", a templated HighLevel path ("/contacts/{id}/tags", never an id) or "other", a skip *category* (never the
readable reason, which holds numbers and names). A label value outside its set would make a new time series per
caller or contact.

Processes. gunicorn runs several workers and `python -m workers` forks several more, so counters live in
prometheus_client's multiprocess mode: each process writes its values to a small mmap file of its own (a few
microseconds per increment, no network: a Redis outage loses no counts, see benchmarks/metrics_cost.py), and a
scrape sums the files. The files of one server (one gunicorn master with its workers, or one `python -m workers`
supervisor with its worker and maintenance processes) form a *process group*: a directory
`<base>/<role>-<pid of the parent>` that the parent creates empty before it forks anything
(integration.metrics_dir, called by integration.gunicorn_conf and workers.__main__), and removes when it stops
cleanly. `<base>` is PROMETHEUS_MULTIPROC_DIR when the operator sets it, else `<instance>/metrics`. A group whose
parent is gone (SIGKILL) is removed by the next parent that starts under the same base.

Exposition. The web's /metrics sums each group under the base separately and labels its series with
`process_group`, so the web and workers of one machine (the Procfile on one host, `textback run`) are one scrape
target, and a group that goes away is a series that ends, not a counter that goes down (which Prometheus would
read as a reset). A worker machine without a web process serves its own group on WORKER_METRICS_PORT. Without
multiprocess mode (tests, a bare `create_app()`), the metrics are this process's own.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

from integration.metrics_dir import BASE_ENV, GROUP_NAME, MULTIPROC_ENV

__all__ = [
    "BASE_ENV",
    "MULTIPROC_ENV",
    "REGISTRY",
    "crm_action",
    "endpoint_label",
    "event_type_label",
    "ghl_request",
    "multiprocess",
    "process_group_collectors",
    "skip_reason_label",
    "status_label",
    "text_finished",
    "text_sent",
    "token_refresh",
    "webhook_answered",
]

log = logging.getLogger(__name__)

OTHER = "other"

# Not prometheus_client's global registry: in multiprocess mode the exposition reads the files instead, and
# nothing else (a library) can add to ours by accident.
REGISTRY = CollectorRegistry(auto_describe=True)

# --- definitions ---------------------------------------------------------------------------------------------

WEBHOOKS = Counter("textback_webhooks", "Webhooks answered, by event type and outcome (stored, duplicate, ignored: "
                   "200; unsigned: 401; bad_request: 400; too_large: 413; retry_later: 429; not_post: 405)",
                   ["event_type", "outcome"], registry=REGISTRY)
WEBHOOK_ACK_SECONDS = Histogram("textback_webhook_ack_seconds", "Time to answer POST /webhooks/ghl",
                                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=REGISTRY)
MISSED_CALLS = Counter("textback_missed_calls_finished", "Missed calls decided, by outcome (texted, skipped, failed)",
                       ["outcome"], registry=REGISTRY)
SKIPPED = Counter("textback_missed_calls_skipped", "Missed calls not texted, by reason category", ["reason"],
                  registry=REGISTRY)
CALL_TO_TEXT_SECONDS = Histogram(
    "textback_call_to_text_seconds", "From the missed call (HighLevel's timestamp) to HighLevel accepting our text; "
    "texts deferred by quiet hours or a configured delay land in the top buckets",
    buckets=(1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300, 900, 3600, 14400, 86400), registry=REGISTRY)
GHL_REQUESTS = Counter("textback_ghl_requests", "HTTP requests to HighLevel (each retry counts), by templated "
                       "endpoint and status (the HTTP code, or timeout / connection_error)",
                       ["method", "endpoint", "status"], registry=REGISTRY)
GHL_SECONDS = Histogram("textback_ghl_request_seconds", "Duration of HTTP requests to HighLevel",
                        ["method", "endpoint"], buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
                        registry=REGISTRY)
TOKEN_REFRESHES = Counter("textback_token_refreshes", "HighLevel token refreshes and re-mints, by outcome "
                          "(refreshed; rejected: the install needs reconnecting; unavailable: try again later; error)",
                          ["user_type", "outcome"], registry=REGISTRY)
CRM_ACTIONS = Counter("textback_crm_actions", "CRM action attempts, by kind and outcome (done, skipped, failed, "
                      "retry, waiting)", ["kind", "outcome"], registry=REGISTRY)

# --- bounded label values ------------------------------------------------------------------------------------

_WEBHOOK_OUTCOMES = frozenset({"stored", "duplicate", "ignored", "unsigned", "bad_request", "too_large",
                               "retry_later", "not_post"})


@functools.cache
def _known_event_types() -> frozenset[str]:
    from workers.handlers import HANDLERS, IGNORED_EVENTS

    return frozenset(HANDLERS) | IGNORED_EVENTS


def event_type_label(event_type: str | None) -> str:
    """A subscribed event type as is; anything else (a type HighLevel adds later, a forged body) is "other"."""
    if event_type is None:
        return "unknown"
    return event_type if event_type in _known_event_types() else OTHER


# The paths integration.ghl.client calls, `{id}` where it puts an id. Literal segments are tried before `{id}`.
_ENDPOINTS = (
    "/oauth/token", "/oauth/locationToken", "/oauth/installedLocations",
    "/contacts/search/duplicate", "/contacts/upsert", "/contacts/{id}", "/contacts/{id}/tags",
    "/contacts/{id}/notes", "/contacts/{id}/tasks",
    "/conversations/messages", "/conversations/search", "/conversations/{id}/messages",
    "/opportunities/pipelines", "/opportunities/search", "/opportunities/", "/opportunities/{id}",
    "/opportunities/{id}/status",
    "/calendars/", "/calendars/events/appointments", "/calendars/{id}/free-slots",
    "/locations/{id}", "/users/", "/users/search",
)
_ENDPOINT_PATTERNS = tuple(
    (template, re.compile("^" + "/".join("[^/]+" if part == "{id}" else re.escape(part)
                                         for part in template.split("/")) + "$"))
    for template in sorted(_ENDPOINTS, key=lambda t: t.count("{id}")))


@functools.lru_cache(maxsize=4096)
def endpoint_label(path: str) -> str:
    """The template of a HighLevel path ("/contacts/abc/tags" -> "/contacts/{id}/tags"); "other" for any path
    not in the table (ids must never become label values)."""
    path = path.split("?", 1)[0]
    for template, pattern in _ENDPOINT_PATTERNS:
        if pattern.match(path):
            return template
    return OTHER


_STATUSES = frozenset({200, 201, 204, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504})


def status_label(status: int | str) -> str:
    """An HTTP status we expect from HighLevel as is, any other as its class ("3xx"); "timeout" and
    "connection_error" for requests that got no answer."""
    if isinstance(status, str):
        return status if status in ("timeout", "connection_error") else OTHER
    return str(status) if status in _STATUSES else f"{status // 100}xx" if 100 <= status < 600 else OTHER


# Readable skip reasons (integration.textback.guards, sender, facts) by category. First match wins; a reason no
# pattern knows is "other" (tests/test_metrics.py keeps every reason the guard chain writes mapped).
_SKIP_CATEGORIES = (
    ("person_replied", r"a person .* already texted the caller"),
    ("opted_out", r"opted out"),
    ("dnd", r"do not disturb"),
    ("cooldown", r"^texted this caller"),
    ("daily_cap", r"daily limit"),
    ("disabled", r"text back is turned off"),
    ("not_installed", r"not installed|uninstall|no installation|reconnect|needs? reconnecting|not live"),
    ("too_old", r"too long ago"),
    ("no_contact", r"no contact record"),
    ("international", r"international number"),
    ("own_number", r"business's own numbers"),
    ("staff", r"team member"),
    ("excluded", r"excluded numbers"),
    ("existing_customer", r"existing customer"),
    ("no_template", r"message is set"),
    ("invalid_settings", r"settings are invalid"),
    ("unusable_number", r"phone number|anonymous caller|is a landline"),
)
_SKIP_PATTERNS = tuple((category, re.compile(pattern, re.IGNORECASE)) for category, pattern in _SKIP_CATEGORIES)
SKIP_REASONS = frozenset(category for category, _ in _SKIP_CATEGORIES) | {OTHER}


def skip_reason_label(outcome: str) -> str:
    """The category of a readable skip outcome ("skipped: texted this caller 2 h ago" -> "cooldown")."""
    reason = outcome.removeprefix("skipped:").strip()
    for category, pattern in _SKIP_PATTERNS:
        if pattern.search(reason):
            return category
    return OTHER


def _bounded(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


# --- recording (one call at the place the fact is known) -----------------------------------------------------


def webhook_answered(event_type: str | None, outcome: str) -> None:
    WEBHOOKS.labels(event_type_label(event_type), _bounded(outcome, _WEBHOOK_OUTCOMES)).inc()


def ghl_request(method: str, path: str, status: int | str, started: float) -> None:
    """One HTTP request to HighLevel that began at `started` (time.perf_counter())."""
    endpoint = endpoint_label(path)
    GHL_REQUESTS.labels(method, endpoint, status_label(status)).inc()
    GHL_SECONDS.labels(method, endpoint).observe(time.perf_counter() - started)


def text_sent(*, now: datetime, called_at: datetime | None) -> None:
    """A missed call's text is out (recorded once, when the send intent first becomes sent)."""
    MISSED_CALLS.labels("texted").inc()
    if called_at is not None:
        CALL_TO_TEXT_SECONDS.observe(max(0.0, (now - called_at).total_seconds()))


_FINISHED = {"skipped": "skipped", "failed": "failed"}


def text_finished(status: str, outcome: str) -> None:
    """A missed call closed without a text: skipped (with its reason's category) or failed."""
    label = _FINISHED.get(status)
    if label is None:
        return
    MISSED_CALLS.labels(label).inc()
    if label == "skipped":
        SKIPPED.labels(skip_reason_label(outcome)).inc()


_TOKEN_OUTCOMES = {"NeedsReconnect": "rejected", "TokenRefreshUnavailable": "unavailable"}


@contextlib.contextmanager
def token_refresh(user_type: str) -> Iterator[None]:
    """Around one refresh (or re-mint) of a token: counts it by how it ended."""
    user = _bounded(user_type, ("Location", "Company"))
    try:
        yield
    except BaseException as exc:
        outcome = next((_TOKEN_OUTCOMES[c.__name__] for c in type(exc).__mro__ if c.__name__ in _TOKEN_OUTCOMES),
                       "error")
        TOKEN_REFRESHES.labels(user, outcome).inc()
        raise
    TOKEN_REFRESHES.labels(user, "refreshed").inc()


_CRM_OUTCOMES = frozenset({"done", "skipped", "failed", "retry", "waiting"})


@functools.cache
def _crm_kinds() -> frozenset[str]:
    from integration.crm.runner import EXECUTORS

    return frozenset(EXECUTORS)


def crm_action(kind: str, outcome: str) -> None:
    CRM_ACTIONS.labels(_bounded(kind, _crm_kinds()), _bounded(outcome, _CRM_OUTCOMES)).inc()


# --- process groups (multiprocess mode) ----------------------------------------------------------------------

def multiprocess() -> bool:
    """Whether this process writes its metrics to a process group's files."""
    from prometheus_client import values

    return getattr(values.ValueClass, "_multiprocess", False)


def _group_families(group: Path) -> list[Metric]:
    files = glob.glob(os.path.join(group, "*.db"))
    try:
        return list(MultiProcessCollector.merge(files, accumulate=True))
    except FileNotFoundError:  # the group was removed while we read it: its parent stopped
        return []


class _ProcessGroupsCollector:
    """Every process group under the base, each summed over its processes, labelled with its name."""

    def __init__(self, base: Path, only: Path | None = None) -> None:
        self.base, self.only = base, only

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        groups = [self.only] if self.only else sorted(p for p in self.base.iterdir() if GROUP_NAME.match(p.name))
        for group in groups:
            for family in _group_families(group):
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(family.name, family.documentation, family.type)
                target.samples.extend(
                    Sample(s.name, {**s.labels, "process_group": group.name}, s.value, s.timestamp, s.exemplar)
                    for s in family.samples)
        yield from merged.values()


def process_group_collectors(*, only_own_group: bool = False) -> list:
    """What /metrics (or the worker's metrics port) exposes of the recorded metrics."""
    if not multiprocess():
        return [REGISTRY]
    own = Path(os.environ[MULTIPROC_ENV])
    base = Path(os.environ.get(BASE_ENV) or own.parent)
    return [_ProcessGroupsCollector(base, only=own if only_own_group else None)]
