"""GET /healthz for the container's health check."""

from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse


class HealthCheckMiddleware:
    """Answer /healthz before host validation: the probe runs inside the container and
    calls 127.0.0.1, which production's DJANGO_ALLOWED_HOSTS need not list."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != "/healthz":
            return self.get_response(request)
        try:
            connection.ensure_connection()
        except Exception as exc:
            return HttpResponse(f"database unreachable: {type(exc).__name__}\n", status=503)
        return HttpResponse("ok\n", content_type="text/plain")
