"""The shapes of the online features API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from datalake.features import Status

MAX_BATCH = 1000


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "additionalProperties": {"type": "string", "nullable": True},
        "description": "feature name -> value; decimals as strings, integers as numbers",
        "example": {"stop_distance_pct": "2.5000", "hour_of_day": 14},
    }
)
class FeatureValuesField(serializers.Field):
    """Feature values: decimals as strings (exact), integers as numbers, nulls as null."""

    def to_representation(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in value.items()}


class FeatureValuesSerializer(serializers.Serializer):
    """The latest feature values of one (client, symbol)."""

    feature_set = serializers.CharField()
    client_id = serializers.IntegerField()
    symbol = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    as_of = serializers.DateTimeField(allow_null=True, help_text="the instant the values describe")
    computed_at = serializers.DateTimeField(allow_null=True)
    version = serializers.CharField(allow_null=True, help_text="version of the definitions")
    features = FeatureValuesField(allow_null=True)


class EntitySerializer(serializers.Serializer):
    client_id = serializers.IntegerField(min_value=1)
    symbol = serializers.CharField(max_length=20)


class BatchRequestSerializer(serializers.Serializer):
    entities = EntitySerializer(many=True, allow_empty=False, max_length=MAX_BATCH)


class BatchResponseSerializer(serializers.Serializer):
    results = FeatureValuesSerializer(many=True)
