from django.contrib import admin

from datalake.models import JobRun, QualityCheck


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


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
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
        return [f.name for f in self.model._meta.fields] + ["duration_display", "cursor_summary"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
