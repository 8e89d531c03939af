"""The lake's own tables: the job history every run writes to."""

from typing import Any

from django.db import models
from django.utils import timezone

from datalake.conf import app_settings
from datalake.managers import JobRunManager
from datalake.redaction import redact, redact_text


class JobRun(models.Model):
    """One run of one job: an export, a Spark job, a backfill, a retention or a check."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        SKIPPED = "SKIPPED", "Skipped"

    class Layer(models.TextChoices):
        BRONZE = "bronze", "Bronze"
        SILVER = "silver", "Silver"
        GOLD = "gold", "Gold"
        OPS = "ops", "Operations"

    class Trigger(models.TextChoices):
        CLI = "cli", "Command line"
        SCHEDULE = "schedule", "Schedule"
        ADMIN = "admin", "Admin"
        API = "api", "API"

    job_name = models.CharField(
        max_length=100, help_text="What ran, e.g. bronze.export or silver.stop_executions"
    )
    layer = models.CharField(max_length=10, choices=Layer.choices, help_text="Lake layer")
    dataset = models.CharField(
        max_length=100, blank=True, help_text="Dataset written, e.g. events (blank if none)"
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, help_text="Outcome"
    )
    trigger = models.CharField(
        max_length=10, choices=Trigger.choices, default=Trigger.CLI, help_text="Who started it"
    )
    parameters = models.JSONField(
        default=dict, blank=True, help_text="Arguments of the run, secrets masked"
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        help_text="Enclosing run (a backfill's per-date runs point at the backfill)",
    )
    created_at = models.DateTimeField(default=timezone.now, help_text="When the run was queued")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When work began")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it ended")
    rows_in = models.BigIntegerField(default=0, help_text="Rows read")
    rows_out = models.BigIntegerField(default=0, help_text="Rows written")
    rows_rejected = models.BigIntegerField(default=0, help_text="Rows quarantined")
    bytes_written = models.BigIntegerField(default=0, help_text="Bytes written to the lake")
    files_written = models.IntegerField(default=0, help_text="Files published to the lake")
    interval_start = models.DateTimeField(
        null=True, blank=True, help_text="Start of the data interval covered (UTC)"
    )
    interval_end = models.DateTimeField(
        null=True, blank=True, help_text="End of the data interval covered (UTC)"
    )
    cursor_start = models.CharField(
        max_length=100, blank=True, help_text="Source cursor before the run"
    )
    cursor_end = models.CharField(max_length=100, blank=True, help_text="Source cursor after")
    error = models.TextField(blank=True, help_text="Why it failed or was skipped")
    host = models.CharField(max_length=255, blank=True, help_text="Machine that ran it")
    pid = models.IntegerField(null=True, blank=True, help_text="Process id on that machine")

    objects = JobRunManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["job_name", "-created_at"], name="idx_jobrun_job_created"),
            models.Index(fields=["status", "-created_at"], name="idx_jobrun_status_created"),
            models.Index(fields=["layer", "dataset"], name="idx_jobrun_layer_dataset"),
        ]

    def __str__(self) -> str:
        return f"{self.job_name} #{self.pk} {self.status}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        secrets = app_settings.SECRET_VALUES
        self.parameters = redact(self.parameters, secrets)
        self.error = redact_text(self.error, secrets)
        super().save(*args, **kwargs)

    @property
    def duration(self):
        """Return how long the run took (so far, when still running), or None."""
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def finish(self, status: str, *, error: str = "", **counters: Any) -> None:
        """Close the run with `status`, recording counters such as rows_out."""
        for name, value in counters.items():
            setattr(self, name, value)
        self.status = status
        self.error = error
        self.finished_at = timezone.now()
        self.save()

    def succeed(self, **counters: Any) -> None:
        """Mark the run SUCCEEDED."""
        self.finish(self.Status.SUCCEEDED, **counters)

    def fail(self, error: str, **counters: Any) -> None:
        """Mark the run FAILED with a readable error."""
        self.finish(self.Status.FAILED, error=error, **counters)

    def skip(self, reason: str) -> None:
        """Mark the run SKIPPED, e.g. because another run of the same job holds the lock."""
        self.finish(self.Status.SKIPPED, error=reason)
