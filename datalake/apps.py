from django.apps import AppConfig


class DatalakeConfig(AppConfig):
    """The bronze / silver / gold data lake built from the backend's tables."""

    name = "datalake"
    verbose_name = "Data lake"

    def ready(self) -> None:
        from datalake import signals  # noqa: F401  (connects the alert receivers)
