"""Log formats: ``LOG_FORMAT=text`` (the demo's default) or ``json`` (one object a line; the image's).

Every record gets ``request_id`` (and ``task``/``task_id`` inside a Celery task) from
:class:`RequestIdFilter`. The console handler's :class:`governance.logredact.RedactFilter` runs after
it and rewrites the message and the traceback; :class:`JsonFormatter` prints those redacted texts
(never re-formats the raw exception) and passes every other string field (``extra={...}``) through
the same redaction, so JSON output holds no more personal data than the text output.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from governance.logredact import redact_text
from governance.observability.requestid import current_request_id, task_var

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Fields our code sets; their values are not user input.
_OWN_FIELDS = frozenset({"timestamp", "level", "logger", "request_id", "task", "task_id", "process"})


class RequestIdFilter(logging.Filter):
    """Attach the current request id (``-`` outside a request) and, in a task, its name and id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        task = task_var.get()
        if task is not None and not hasattr(record, "task_id"):
            record.task, record.task_id = task
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, request_id (+ task, exc_info)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(process)d %(message)s", *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_text:
            # The redaction filter already rendered (and redacted) the traceback into exc_text.
            exc_info, record.exc_info = record.exc_info, None
            try:
                return super().format(record)
            finally:
                record.exc_info = exc_info
        return super().format(record)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key, value in log_data.items():
            if key not in _OWN_FIELDS and isinstance(value, str) and value:
                log_data[key] = redact_text(value)
        return log_data


class GunicornAccessJsonFormatter(JsonFormatter):
    """gunicorn's access log as fields (the atoms are already redacted by ``RedactingLogger``)."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, dict) else {}
        if atoms:
            fields = {
                "remote": atoms.get("h"), "method": atoms.get("m"), "path": atoms.get("U"),
                "status": _int(atoms.get("s")), "bytes": _int(atoms.get("B")),
                "duration_ms": round(_int(atoms.get("D")) / 1000, 2) if atoms.get("D") else None,
                "request_id": atoms.get("{x-request-id}o") or "-",
            }
            for key, value in fields.items():
                setattr(record, key, value)
        return super().format(record)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
