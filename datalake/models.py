"""The lake's own tables: the job history every run writes to."""

from typing import Any

from django.db import models
from django.dispatch import Signal
from django.utils import timezone

from datalake.conf import app_settings
from datalake.managers import JobRunManager
from datalake.redaction import redact, redact_text

#: Sent with `run=` when a JobRun is closed (succeeded, failed or skipped): alerts listen.
run_finished = Signal()


class JobRun(models.Model):
    """One run of one job: an export, a Spark job, a backfill, a retention or a check."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        SKIPPED = "SKIPPED", "Skipped"
        CANCELLED = "CANCELLED", "Cancelled"

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
    spark_app_id = models.CharField(
        max_length=100, blank=True, help_text="Spark application id (Spark jobs only)"
    )
    log_file = models.CharField(
        max_length=500, blank=True, help_text="Where the full log of the run was written"
    )
    consumed = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="consumers",
        help_text="Runs whose published outputs this run read (lineage)",
    )
    # --- operations (issue 12, items 3-5): cancel, re-run, what a run did ---
    celery_task_id = models.CharField(
        max_length=255, blank=True, help_text="Celery task that runs it (revoked on cancel)"
    )
    process_group = models.IntegerField(
        null=True, blank=True, help_text="Process group of its spark-submit (killed on cancel)"
    )
    summary = models.JSONField(
        default=dict, blank=True, help_text="What the run did, e.g. what retention deleted"
    )

    objects = JobRunManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["job_name", "-created_at"], name="idx_jobrun_job_created"),
            models.Index(fields=["status", "-created_at"], name="idx_jobrun_status_created"),
            models.Index(fields=["layer", "dataset"], name="idx_jobrun_layer_dataset"),
        ]
        permissions = [
            ("operate_jobrun", "Can trigger, re-run and cancel lake runs"),
            ("read_any_features", "Can read any client's online features"),
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

    @property
    def cursor_summary(self) -> str:
        """Return what the run consumed, in words.

        A silver run's cursor is the id of the last bronze export batch it consumed (its
        daily increment starts after it); a bronze export's is the source cursor value.
        """
        start, end = self.cursor_start, self.cursor_end
        if not start and not end:
            return "-"
        if self.layer != self.Layer.SILVER or not end.isdigit():
            return f"{start or '-'} → {end or '-'}"
        if not start:
            return f"all export batches, up to #{end}"
        if start == end:
            return f"no export batch after #{end}"
        return f"export batches #{int(start) + 1} to #{end}"

    def finish(self, status: str, *, error: str = "", **counters: Any) -> None:
        """Close the run with `status`, recording counters such as rows_out.

        A run cancelled meanwhile (from admin, by another process) stays CANCELLED.
        """
        if (
            status != self.Status.CANCELLED
            and self.pk
            and JobRun.objects.filter(pk=self.pk, status=self.Status.CANCELLED).exists()
        ):
            self.refresh_from_db()
            return
        for name, value in counters.items():
            setattr(self, name, value)
        self.status = status
        self.error = error
        self.finished_at = timezone.now()
        self.save()
        run_finished.send(sender=JobRun, run=self)

    def succeed(self, **counters: Any) -> None:
        """Mark the run SUCCEEDED."""
        self.finish(self.Status.SUCCEEDED, **counters)

    def fail(self, error: str, **counters: Any) -> None:
        """Mark the run FAILED with a readable error."""
        self.finish(self.Status.FAILED, error=error, **counters)

    def skip(self, reason: str) -> None:
        """Mark the run SKIPPED, e.g. because another run of the same job holds the lock."""
        self.finish(self.Status.SKIPPED, error=reason)


class ExportCursor(models.Model):
    """How far a bronze dataset has been exported: the durable cursor of the exporter.

    Every source row whose cursor value is at most `high_watermark` is in bronze, except
    the values listed in `gaps`: values skipped by the source sequence that a transaction
    still open at export time may yet commit. Each run looks for them again and closes a
    gap only once no transaction that could fill it can still be running.
    """

    dataset = models.CharField(max_length=100, unique=True, help_text="Bronze dataset name")
    high_watermark = models.BigIntegerField(
        default=0, help_text="Highest source cursor value covered by committed exports"
    )
    gaps = models.JSONField(
        default=list,
        blank=True,
        help_text="Open gaps below the watermark: [{lo, hi, seen_at, holders}]",
    )
    next_batch = models.BigIntegerField(default=1, help_text="Number of the next export batch")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the cursor last moved")

    class Meta:
        ordering = ["dataset"]

    def __str__(self) -> str:
        return f"{self.dataset} @ {self.high_watermark} ({len(self.gaps)} gaps)"


class ExportBatch(models.Model):
    """One batch of an export: written as an intent before any file is published, so a
    run that dies half-way is completed (never redone) by the next one."""

    class Status(models.TextChoices):
        PLANNED = "PLANNED", "Planned"
        COMMITTED = "COMMITTED", "Committed"

    dataset = models.CharField(max_length=100, help_text="Bronze dataset name")
    number = models.BigIntegerField(help_text="Batch number within the dataset")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PLANNED, help_text="State"
    )
    run = models.ForeignKey(
        JobRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="export_batches",
        help_text="Run that planned the batch",
    )
    members = models.JSONField(
        default=list, help_text="Source cursor values in this batch, as [lo, hi] ranges"
    )
    watermark_before = models.BigIntegerField(help_text="Cursor high watermark before")
    watermark_after = models.BigIntegerField(help_text="Cursor high watermark after")
    gaps_after = models.JSONField(default=list, help_text="Open gaps once committed")
    files = models.JSONField(default=list, help_text="Files of the batch with their manifests")
    rows = models.BigIntegerField(default=0, help_text="Rows written to bronze")
    rejected = models.BigIntegerField(default=0, help_text="Rows written to quarantine")
    created_at = models.DateTimeField(default=timezone.now, help_text="When planned")
    committed_at = models.DateTimeField(null=True, blank=True, help_text="When committed")

    class Meta:
        ordering = ["dataset", "number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="uniq_exportbatch_number")
        ]
        indexes = [
            models.Index(fields=["dataset", "status"], name="idx_exportbatch_status"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} batch {self.number} ({self.status})"


class Lease(models.Model):
    """A named lock with an expiry, for databases without advisory locks (SQLite)."""

    name = models.CharField(max_length=200, unique=True, help_text="What is locked")
    holder = models.CharField(max_length=200, help_text="host:pid:token of the holder")
    expires_at = models.DateTimeField(help_text="When the lease lapses unless renewed")

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder}"


class QualityCheck(models.Model):
    """The result of one data-quality check on one partition, written by a Spark job."""

    run = models.ForeignKey(
        JobRun, on_delete=models.CASCADE, related_name="checks", help_text="Run that checked"
    )
    dataset = models.CharField(max_length=100, help_text="Dataset checked, e.g. silver.x")
    partition = models.CharField(max_length=200, blank=True, help_text="Partition (or all)")
    name = models.CharField(max_length=100, help_text="Check name, e.g. execution_id_unique")
    passed = models.BooleanField(help_text="Whether the check passed")
    critical = models.BooleanField(default=True, help_text="A failure stops publishing")
    observed = models.CharField(max_length=500, blank=True, help_text="Observed value")

    class Meta:
        ordering = ["run", "dataset", "partition", "name"]
        indexes = [models.Index(fields=["dataset", "name"], name="idx_qualitycheck_ds_name")]

    def __str__(self) -> str:
        return f"{self.dataset} {self.partition} {self.name}: {'ok' if self.passed else 'FAILED'}"


# --- Schedules (datalake/schedules.py) ------------------------------------------------------


class ManagedSchedule(models.Model):
    """What `setup_schedules` wrote into a periodic task, and how its runs are going.

    The fingerprint tells an untouched row (safe to update) from one an operator edited
    or disabled in admin (left alone).
    """

    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.CASCADE,
        related_name="managed",
        help_text="The django-celery-beat row this entry of the code's table created",
    )
    fingerprint = models.CharField(
        max_length=64,
        help_text="sha256 of the task, schedule, kwargs, enabled and description as last written",
    )
    consecutive_failures = models.IntegerField(
        default=0, help_text="Failed runs in a row since the last success or pause"
    )
    paused_at = models.DateTimeField(
        null=True, blank=True, help_text="When it paused itself after repeated failures"
    )
    pause_reason = models.TextField(blank=True, help_text="Why it paused itself")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change")

    class Meta:
        ordering = ["periodic_task__name"]

    def __str__(self) -> str:
        return self.periodic_task.name


class DatasetStatus(models.Model):
    """One dataset's state as one monitoring check saw it: volumes, freshness, quality.

    A row per dataset per check run, so freshness and volumes can be followed over time.
    """

    class Health(models.TextChoices):
        OK = "OK", "OK"
        WARNING = "WARNING", "Warning"
        BREACHED = "BREACHED", "Contract breached"
        EMPTY = "EMPTY", "No data"
        NO_CONTRACT = "NO_CONTRACT", "No contract"

    run = models.ForeignKey(
        JobRun,
        on_delete=models.CASCADE,
        related_name="dataset_statuses",
        help_text="The lake_checks run that took this sample",
    )
    checked_at = models.DateTimeField(default=timezone.now, help_text="When it was sampled")
    dataset = models.CharField(max_length=200, help_text="Dotted name, e.g. bronze.events")
    layer = models.CharField(max_length=10, help_text="bronze, silver or gold")
    partitions = models.IntegerField(default=0, help_text="Partitions holding data")
    files = models.IntegerField(default=0, help_text="Parquet files")
    rows = models.BigIntegerField(default=0, help_text="Rows in all files")
    bytes = models.BigIntegerField(default=0, help_text="Bytes of the Parquet files")
    newest_data = models.DateTimeField(
        null=True, blank=True, help_text="Newest timestamp in the data (UTC)"
    )
    lag_seconds = models.FloatField(
        null=True, blank=True, help_text="Check time minus the newest data, in seconds"
    )
    max_lag_seconds = models.FloatField(
        null=True, blank=True, help_text="The freshness contract's maximum lag (none: no contract)"
    )
    health = models.CharField(
        max_length=12, choices=Health.choices, help_text="Outcome against the contracts"
    )
    problems = models.JSONField(
        default=list, blank=True, help_text="Why the dataset breaches its contracts"
    )
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="What deserves a look but breaches no contract (a training set's label balance)",
    )
    details = models.JSONField(
        default=dict,
        blank=True,
        help_text="Rows per date, null % of critical columns, label balance, reconciliation",
    )

    class Meta:
        ordering = ["-checked_at", "dataset"]
        verbose_name_plural = "dataset statuses"
        indexes = [
            models.Index(fields=["dataset", "-checked_at"], name="idx_dsstatus_ds_checked"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} {self.health} at {self.checked_at:%Y-%m-%d %H:%M:%S}"
