from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from datalake import operations
from datalake.models import DatasetStatus, JobRun, ManagedSchedule, QualityCheck

SECONDS = "%Y-%m-%d %H:%M:%S"


def _time(value) -> str:
    return value.strftime(SECONDS) if value else "-"


class ChildRunInline(admin.TabularInline):
    model = JobRun
    fk_name = "parent"
    fields = (
        "job_name",
        "dataset",
        "status",
        "interval_start",
        "started_at",
        "finished_at",
        "rows_out",
        "files_written",
        "bytes_written",
        "error",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class QualityCheckInline(admin.TabularInline):
    model = QualityCheck
    fields = ("dataset", "partition", "name", "passed", "critical", "observed")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class LineageAdminMixin:
    """Show which runs' outputs a run consumed, and which runs consumed its own."""

    lineage_fieldset = ("Lineage", {"fields": ("consumed_links", "consumer_links")})
    lineage_fields = ("consumed_links", "consumer_links")

    @staticmethod
    def _links(runs) -> str:
        rows = [
            (reverse("admin:datalake_jobrun_change", args=[r.pk]), str(r))
            for r in runs.order_by("-pk")[:200]
        ]
        if not rows:
            return "-"
        return format_html_join(format_html("<br>"), '<a href="{}">{}</a>', rows)

    @admin.display(description="consumed (inputs)")
    def consumed_links(self, obj: JobRun) -> str:
        return self._links(obj.consumed.all())

    @admin.display(description="consumed by (outputs read by)")
    def consumer_links(self, obj: JobRun) -> str:
        return self._links(obj.consumers.all())


@admin.register(JobRun)
class JobRunAdmin(LineageAdminMixin, admin.ModelAdmin):
    """Read-only job history: every export, Spark job, backfill, retention and check."""

    # Narrow enough for a laptop: the rest is on the run's page.
    list_display = ("id", "job", "result", "started", "duration_display", "rows_display")
    actions = ("rerun_runs", "cancel_runs")

    class Media:
        css = {"all": ("datalake/admin.css",)}

    list_filter = ("status", "job_name", "layer", "dataset", "trigger")
    search_fields = ("job_name", "dataset", "error")
    date_hierarchy = "created_at"
    list_select_related = ("parent",)
    fieldsets = (
        (None, {"fields": ("job_name", "layer", "dataset", "status", "trigger", "parent")}),
        ("Timing", {"fields": ("created", "started", "finished", "duration_display")}),
        (
            "Volumes",
            {"fields": ("rows_in", "rows_out", "rows_rejected", "bytes_written", "files_written")},
        ),
        (
            "Data range",
            {
                "fields": (
                    "interval_start",
                    "interval_end",
                    "cursor_summary",
                    "cursor_start",
                    "cursor_end",
                )
            },
        ),
        ("Parameters", {"fields": ("parameters",)}),
        (
            "Outcome",
            {
                "fields": (
                    "error",
                    "summary",
                    "host",
                    "pid",
                    "process_group",
                    "celery_task_id",
                    "spark_app_id",
                    "log_file",
                )
            },
        ),
        LineageAdminMixin.lineage_fieldset,
    )
    inlines = (QualityCheckInline, ChildRunInline)

    @admin.display(description="duration")
    def duration_display(self, obj: JobRun) -> str:
        duration = obj.duration
        if duration is None:
            return "-"
        seconds = duration.total_seconds()
        if seconds < 60:
            return f"{seconds:.1f}s"
        minutes, seconds = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: JobRun) -> str:
        return _time(obj.created_at)

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: JobRun) -> str:
        return _time(obj.started_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: JobRun) -> str:
        return _time(obj.finished_at)

    @admin.display(description="rows out", ordering="rows_out")
    def rows_display(self, obj: JobRun) -> str:
        rejected = f" ({obj.rows_rejected:,} rejected)" if obj.rows_rejected else ""
        return f"{obj.rows_out:,}{rejected}"

    @admin.display(description="job", ordering="job_name")
    def job(self, obj: JobRun) -> str:
        return f"{obj.job_name} · {obj.dataset}" if obj.dataset else obj.job_name

    @admin.display(description="result", ordering="status")
    def result(self, obj: JobRun) -> str:
        first = obj.error.splitlines()[0] if obj.error else ""
        return f"{obj.status}: {first[:60]}" if first else obj.status

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + [
            "created",
            "started",
            "finished",
            "duration_display",
            "cursor_summary",
            *self.lineage_fields,
        ]

    def has_operate_permission(self, request) -> bool:
        """Tell whether the user may re-run and cancel runs (datalake.operate_jobrun)."""
        return request.user.has_perm("datalake.operate_jobrun")

    @admin.action(description="Re-run the selected failed runs", permissions=["operate"])
    def rerun_runs(self, request, queryset) -> None:
        for run in queryset:
            try:
                queued = operations.rerun(run)
            except operations.NotRerunnable as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            self.message_user(
                request, f"run {run.pk}: re-run queued as {queued.task} (task {queued.task_id})"
            )

    @admin.action(description="Cancel the selected running runs", permissions=["operate"])
    def cancel_runs(self, request, queryset) -> None:
        for run in queryset:
            try:
                done = operations.cancel(run, by=request.user.get_username())
            except operations.NotCancellable as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            steps = "; ".join(done) or "no task or process recorded"
            self.message_user(request, f"run {run.pk} cancelled ({steps})")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- operations (issue 12, item 5): the datasets page ---


@admin.register(DatasetStatus)
class DatasetStatusAdmin(admin.ModelAdmin):
    """The datasets page: every dataset's latest status, its last run, checks and charts."""

    change_list_template = "admin/datalake/datasets.html"

    def changelist_view(self, request, extra_context=None):
        from django.core.exceptions import PermissionDenied
        from django.template.response import TemplateResponse

        from datalake.dashboard import charts, dataset_rows
        from datalake.monitoring import span

        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = dataset_rows()
        for row in rows:
            s = row.status
            row.lag = span(s.lag_seconds) if s.lag_seconds is not None else "-"
            row.contract = span(s.max_lag_seconds) if s.max_lag_seconds is not None else "-"
        first = rows[0].status if rows else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Datasets",
            "opts": self.model._meta,
            "rows": rows,
            "charts": charts([r.status for r in rows]),
            "checked_at": first.checked_at if first else None,
            "check_run": first.run_id if first else None,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.change_list_template, context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- Schedules (datalake/schedules.py) ------------------------------------------------------


@admin.register(ManagedSchedule)
class ManagedScheduleAdmin(admin.ModelAdmin):
    """The schedules setup_schedules manages: failures in a row and why one paused.

    Edit, pause or resume a schedule on its periodic task (linked); this page is read-only.
    """

    list_display = ("schedule_link", "enabled", "consecutive_failures", "paused_at", "pause_reason")
    list_filter = ("periodic_task__enabled",)
    readonly_fields = ("schedule_link", "enabled", "fingerprint", "consecutive_failures",
                       "paused_at", "pause_reason", "updated_at")  # fmt: skip
    fields = readonly_fields

    @admin.display(description="schedule")
    def schedule_link(self, obj: ManagedSchedule) -> str:
        task = obj.periodic_task
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        return format_html('<a href="{}">{}</a>', url, task.name)

    @admin.display(description="enabled", boolean=True)
    def enabled(self, obj: ManagedSchedule) -> bool:
        return obj.periodic_task.enabled

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
