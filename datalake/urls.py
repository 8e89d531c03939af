"""URLs of the datalake API (mounted at /api/datalake/)."""

from django.urls import path

from datalake.views import BatchFeaturesView, LatestFeaturesView

urlpatterns = [
    path("features/<str:feature_set>/<int:client_id>/<str:symbol>/", LatestFeaturesView.as_view(),
         name="features-latest"),
    path("features/<str:feature_set>/", BatchFeaturesView.as_view(), name="features-batch"),
]  # fmt: skip
