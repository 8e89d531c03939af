from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from datalake.models import JobRun, ManagedSchedule, QualityCheck


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

    list_display = (
        "id",
        "job_name",
        "layer",
        "dataset",
        "status",
        "trigger",
        "started_at",
        "duration_display",
        "rows_out",
        "rows_rejected",
        "files_written",
        "bytes_written",
    )
    list_filter = ("status", "job_name", "layer", "dataset", "trigger")
    search_fields = ("job_name", "dataset", "error")
    date_hierarchy = "created_at"
    list_select_related = ("parent",)
    fieldsets = (
        (None, {"fields": ("job_name", "layer", "dataset", "status", "trigger", "parent")}),
        ("Timing", {"fields": ("created_at", "started_at", "finished_at", "duration_display")}),
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
        ("Outcome", {"fields": ("error", "host", "pid", "spark_app_id", "log_file")}),
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

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + [
            "duration_display",
            "cursor_summary",
            *self.lineage_fields,
        ]

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
