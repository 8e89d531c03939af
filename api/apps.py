from django.apps import AppConfig


class ApiConfig(AppConfig):
    """Stand-in for the Robson backend's `api` app: the tables the lake reads."""

    name = "api"
    verbose_name = "Robson backend (source tables)"
