"""URLs of the datalake API (mounted at /api/datalake/)."""

from django.urls import path, re_path

from datalake.views import BatchFeaturesView, LatestFeaturesView, NoEndpoint

urlpatterns = [
    path("features/<str:feature_set>/<int:client_id>/<str:symbol>/", LatestFeaturesView.as_view(),
         name="features-latest"),
    path("features/<str:feature_set>/", BatchFeaturesView.as_view(), name="features-batch"),
    # Last: any other path under the API (e.g. a client id that is not a number) is a
    # JSON 404, never Django's HTML page.
    re_path(r"", NoEndpoint.as_view(), name="no-endpoint"),
]  # fmt: skip
