import os
import socket
from typing import Any

from django.db import models
from django.utils import timezone


def _current_task_id() -> str:
    from celery import current_task

    request = getattr(current_task, "request", None)
    return (getattr(request, "id", None) or "") if current_task else ""


class JobRunQuerySet(models.QuerySet):
    def running(self) -> "JobRunQuerySet":
        return self.filter(status=self.model.Status.RUNNING)

    def for_job(self, job_name: str) -> "JobRunQuerySet":
        return self.filter(job_name=job_name)


class JobRunManager(models.Manager.from_queryset(JobRunQuerySet)):
    def start(
        self,
        job_name: str,
        *,
        layer: str,
        dataset: str = "",
        trigger: str = "cli",
        parameters: dict[str, Any] | None = None,
        parent=None,
        **fields: Any,
    ):
        """Create and return a RUNNING run stamped with this host, process and, inside a
        Celery task, the task id (so the run can be cancelled from admin)."""
        fields.setdefault("celery_task_id", _current_task_id())
        return self.create(
            job_name=job_name,
            layer=layer,
            dataset=dataset,
            trigger=trigger,
            parameters=parameters or {},
            parent=parent,
            status=self.model.Status.RUNNING,
            started_at=timezone.now(),
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            **fields,
        )
