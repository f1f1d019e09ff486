"""Stamp every log line written inside a job with the job's id and function (style-anchors habit 13).

With several workers interleaving output, "which job said this?" is the first question on call.
"""

from __future__ import annotations

import logging

from rq import get_current_job

from integration.logging_setup import JsonFormatter

__all__ = ["JOB_LOG_FORMAT", "CurrentJobFilter", "install_job_log_filter"]

JOB_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s%(job_tag)s: %(message)s"


class CurrentJobFilter(logging.Filter):
    """Adds `job_id`, `job_func` ("-" outside a job) and `job_tag` (" [job <id>]", or "" outside a job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = get_current_job()
        record.job_id = job.id if job is not None else "-"
        record.job_func = job.func_name if job is not None else "-"
        record.job_tag = f" [job {job.id}]" if job is not None else ""
        return True


def install_job_log_filter(logger: logging.Logger | None = None) -> None:
    """Attach the filter and a format showing the job id to every handler of `logger` (default: root)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, CurrentJobFilter) for f in handler.filters):
            handler.addFilter(CurrentJobFilter())
            if not isinstance(handler.formatter, JsonFormatter):  # LOG_FORMAT=json: job_id is a field already
                handler.setFormatter(logging.Formatter(JOB_LOG_FORMAT))
