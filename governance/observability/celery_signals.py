"""Carry the request id from the code that enqueues a task to the task's log lines and audit entries.

``before_task_publish`` puts the current id in the message headers; ``task_prerun`` sets it (or a
new one, for scheduled tasks) in the worker for the task's duration; ``task_postrun`` clears it.
Tasks a task enqueues inherit the same id.
"""

from __future__ import annotations

from celery.signals import before_task_publish, task_postrun, task_prerun

from governance.observability.requestid import (
    TASK_HEADER,
    current_request_id,
    new_request_id,
    request_id_var,
    task_var,
    valid_request_id,
)

_tokens: dict[str, tuple] = {}


@before_task_publish.connect(dispatch_uid="mamoru.request_id.publish")
def _publish_request_id(sender=None, headers=None, **kwargs) -> None:
    request_id = current_request_id()
    if request_id and headers is not None and TASK_HEADER not in headers:
        headers[TASK_HEADER] = request_id


@task_prerun.connect(dispatch_uid="mamoru.request_id.prerun")
def _task_request_id(sender=None, task_id=None, task=None, **kwargs) -> None:
    incoming = getattr(task.request, TASK_HEADER, None) if task is not None else None
    if not incoming and task is not None:
        incoming = (task.request.headers or {}).get(TASK_HEADER) if isinstance(task.request.headers, dict) else None
    # an eager task runs inside the caller's context: it keeps the caller's id
    request_id = incoming if valid_request_id(incoming) else (current_request_id() or new_request_id())
    _tokens[task_id] = (
        request_id_var.set(request_id),
        task_var.set((getattr(task, "name", "?"), task_id or "?")),
    )


@task_postrun.connect(dispatch_uid="mamoru.request_id.postrun")
def _task_request_id_done(sender=None, task_id=None, **kwargs) -> None:
    tokens = _tokens.pop(task_id, None)
    if tokens is None:
        return
    request_token, task_token = tokens
    try:
        request_id_var.reset(request_token)
        task_var.reset(task_token)
    except ValueError:  # set in another context (eager tasks run inside the caller's)
        request_id_var.set(None)
        task_var.set(None)
