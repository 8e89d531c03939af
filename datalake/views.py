"""The online features API: thin views over datalake.features."""

from __future__ import annotations

from django.urls import Resolver404, resolve
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datalake.features import FEATURE_SETS, get_online_features
from datalake.permissions import CanReadClientFeatures
from datalake.serializers import (
    BatchRequestSerializer,
    BatchResponseSerializer,
    FeatureValuesSerializer,
)


def _feature_set(name: str) -> str:
    if name not in FEATURE_SETS:
        raise NotFound(f"unknown feature set {name!r}")
    return name


class LatestFeaturesView(APIView):
    permission_classes = [CanReadClientFeatures]

    @extend_schema(responses=FeatureValuesSerializer, summary="Latest features of a pair")
    def get(self, request: Request, feature_set: str, client_id: int, symbol: str) -> Response:
        answer = get_online_features([(client_id, symbol)], _feature_set(feature_set))[0]
        return Response(FeatureValuesSerializer(answer).data)


class BatchFeaturesView(APIView):
    permission_classes = [CanReadClientFeatures]

    @extend_schema(request=BatchRequestSerializer, responses=BatchResponseSerializer,
                   summary="Latest features of many pairs")  # fmt: skip
    def post(self, request: Request, feature_set: str) -> Response:
        name = _feature_set(feature_set)
        body = BatchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        answers = get_online_features(body.validated_data["entities"], name)
        return Response(BatchResponseSerializer({"results": answers}).data)


@extend_schema(exclude=True)
class NoEndpoint(APIView):
    """Answer 404 as JSON (``{"detail": ...}``) for an API path that no endpoint matches.

    Mounted last under the API's prefixes: a path that fails to match (a client id that
    is not a number, a missing slash) would otherwise get Django's HTML 404 page, its
    debug page when DEBUG is on, since Django answers it before any handler404.
    """

    authentication_classes = []
    permission_classes = []

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        detail = f"no API endpoint at {request.path}"
        if not request.path.endswith("/") and _is_endpoint(request.path + "/"):
            detail += f"; did you mean {request.path}/?"
        raise NotFound(detail)


def _is_endpoint(path: str) -> bool:
    try:
        return getattr(resolve(path).func, "view_class", None) is not NoEndpoint
    except Resolver404:
        return False
