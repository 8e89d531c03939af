from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from datalake.views import NoEndpoint

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/datalake/", include("datalake.urls")),
    # Any other path under /api/ answers a JSON 404 whatever DEBUG says (Django's own 404
    # page is HTML, and with DEBUG on it bypasses handler404).
    re_path(r"^api/", NoEndpoint.as_view()),
]
