"""Tenant isolation of the online features: who may read which client's values."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission

from datalake.conf import app_settings


def user_client_id(user: Any) -> int | None:
    """Return the id of the client ``user`` belongs to (DATALAKE_USER_CLIENT), or None.

    The setting is an attribute path (Robson: ``client``; ``profile.client``) or a dotted
    callable ``module:function`` taking the user and returning a client or its id.
    """
    spec = app_settings.USER_CLIENT
    try:
        if ":" in spec:
            value = import_string(spec.replace(":", "."))(user)
        else:
            *path, last = spec.split(".")
            owner = user
            for name in path:
                owner = getattr(owner, name)
            # A foreign key's id is on the row already: no query for the client itself.
            value = getattr(owner, f"{last}_id", None)
            if value is None:
                value = getattr(owner, last)
    except (AttributeError, ObjectDoesNotExist):
        return None
    if value is None:
        return None
    return int(getattr(value, "pk", value))


def can_read_client(user: Any, client_id: int) -> bool:
    """Tell whether ``user`` may read ``client_id``'s features: their own client's, or
    any client's for staff holding DATALAKE_FEATURES_READ_ANY_PERMISSION."""
    if not (user and user.is_authenticated):
        return False
    if user.is_staff and user.has_perm(app_settings.FEATURES_READ_ANY_PERMISSION):
        return True
    return user_client_id(user) == int(client_id)


class CanReadClientFeatures(BasePermission):
    """Allow a request only when the user may read every client it names (the URL's
    ``client_id``, or each entity of a batch body)."""

    message = "You may read only your own client's features."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if "client_id" in view.kwargs:
            return can_read_client(request.user, view.kwargs["client_id"])
        entities = request.data.get("entities") if hasattr(request.data, "get") else None
        if not isinstance(entities, list):
            return True  # the serializer answers 400
        ids = set()
        for entity in entities:
            try:
                ids.add(int(entity["client_id"]))
            except (TypeError, KeyError, ValueError):
                continue  # the serializer answers 400
        return all(can_read_client(request.user, c) for c in ids)
