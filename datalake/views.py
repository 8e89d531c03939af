"""The online features API: thin views over datalake.features."""

from __future__ import annotations

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
