"""Online features: the latest values per (client, symbol), served from a cache.

The values are the rows of ``gold/features/<feature_set>/client_id=N/date=D/`` that the
refresh job (``spark_jobs/gold/online_features.py``) writes; a client's are those of its
newest partition. After a successful refresh, :func:`load_refresh` copies the newest
partitions of the clients it wrote into the feature cache under the refresh's version
(its own partitions unless it was back-dated), then moves the ``current`` pointer to it:
a reader reads the pointer once and then only keys of that version, so it sees the old
or the new refresh whole, never a mix. A miss (or an unreachable cache) reads the
client's newest partition with pyarrow, and fills the cache: under the current version,
or, in a process without a pointer (with the local-memory cache, every process but the
refresh's), for :data:`UNVERSIONED_TTL_SECONDS` only, so that a later refresh reaches it.

No pyspark here: the Django app reads what the Spark jobs wrote.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, timedelta
from typing import Any

import pyarrow.parquet as pq
from django.core.cache import caches
from django.db import models
from django.utils import timezone

from datalake.conf import app_settings
from datalake.storage import get_storage

log = logging.getLogger(__name__)

#: Feature set -> its directory on the lake.
FEATURE_SETS = {"stop_execution_features": "gold/features/stop_execution_features"}
DEFAULT_FEATURE_SET = "stop_execution_features"
#: Columns of a row that are not feature values.
ROW_COLUMNS = frozenset(
    {"client_id", "symbol", "as_of", "computed_at", "operation_id", "stop_price",
     "feature_version", "refresh_run_id", "date"}
)  # fmt: skip
OLD_VERSION_TTL_SECONDS = 24 * 3600  # readers of the previous version finish long before
_ABSENT = "__absent__"  # a cached NOT_FOUND, valid for its version only
#: Where a process that has no ``current`` pointer (a web worker with the local-memory
#: cache: the refresh loaded another process's memory) caches what it read from Parquet,
#: for this long: a later refresh reaches it within that time.
UNVERSIONED = "parquet"
UNVERSIONED_TTL_SECONDS = 60


class Status(models.TextChoices):
    PRESENT = "PRESENT", "Present"
    NOT_FOUND = "NOT_FOUND", "Not found"
    STALE = "STALE", "Stale"


class UnknownFeatureSet(LookupError):
    """A lookup named a feature set that does not exist."""


def _checked(feature_set: str) -> str:
    if feature_set not in FEATURE_SETS:
        raise UnknownFeatureSet(
            f"unknown feature set {feature_set!r}; known: {', '.join(FEATURE_SETS)}"
        )
    return feature_set


def _cache():
    return caches[app_settings.FEATURES_CACHE]


def pointer_key(feature_set: str) -> str:
    return f"features:{feature_set}:current"


def entry_key(feature_set: str, version: int | str, client_id: int, symbol: str) -> str:
    return f"features:{feature_set}:v{version}:{int(client_id)}:{symbol}"


# --- reading the lake -----------------------------------------------------------------------


def newest_partition(feature_set: str, client_id: int) -> list[str]:
    """Return the keys of the Parquet files of the client's newest date partition."""
    prefix = f"{FEATURE_SETS[feature_set]}/client_id={int(client_id)}"
    files: dict[str, list[str]] = {}
    for info in get_storage().list(prefix):
        directory, _, name = info.key.rpartition("/")
        if name.endswith(".parquet") and directory.rsplit("/", 1)[-1].startswith("date="):
            files.setdefault(directory, []).append(info.key)
    if not files:
        return []
    return sorted(files[max(files)])


def read_rows(keys: Iterable[str]) -> list[dict[str, Any]]:
    """Return the rows of the given Parquet files of the lake."""
    storage = get_storage()
    rows: list[dict[str, Any]] = []
    for key in keys:
        client = next((p for p in key.split("/") if p.startswith("client_id=")), None)
        for row in pq.read_table(io.BytesIO(storage.get_bytes(key))).to_pylist():
            if client is not None:
                row["client_id"] = int(client.split("=", 1)[1])
            rows.append(row)
    return rows


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    """Return what the cache holds for one row: the values and when they describe."""
    return {
        "as_of": row["as_of"],
        "computed_at": row.get("computed_at"),
        "version": row.get("feature_version"),
        "refresh_run_id": row.get("refresh_run_id"),
        "features": {k: v for k, v in row.items() if k not in ROW_COLUMNS},
    }


def _answer(
    feature_set: str, client_id: int, symbol: str, entry: dict | None, source: str
) -> dict[str, Any]:
    """Return the lookup's answer, with a status measured against now."""
    answer = {"feature_set": feature_set, "client_id": int(client_id), "symbol": symbol,
              "source": source}  # fmt: skip
    if entry is None:
        return {**answer, "status": Status.NOT_FOUND, "as_of": None, "computed_at": None,
                "version": None, "features": None}  # fmt: skip
    as_of = entry["as_of"]
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    age = timezone.now() - as_of
    stale = age > timedelta(seconds=app_settings.FEATURES_MAX_AGE_SECONDS)
    return {
        **answer,
        "status": Status.STALE if stale else Status.PRESENT,
        "as_of": as_of,
        "computed_at": entry["computed_at"],
        "version": entry["version"],
        "features": dict(entry["features"]),
    }


# --- lookups --------------------------------------------------------------------------------


def get_latest_features(
    client_id: int, symbol: str, feature_set: str = DEFAULT_FEATURE_SET
) -> dict[str, Any]:
    """Return the latest feature values of (client, symbol) with ``as_of``, the feature
    set's ``version`` and a ``status``: PRESENT, NOT_FOUND, or STALE (older than
    DATALAKE_FEATURES_MAX_AGE_SECONDS, returned marked so)."""
    return get_online_features([(client_id, symbol)], feature_set)[0]


def get_online_features(
    entity_rows: Sequence[tuple[int, str] | dict[str, Any]],
    feature_set: str = DEFAULT_FEATURE_SET,
) -> list[dict[str, Any]]:
    """Return one answer (as :func:`get_latest_features`) per entity row, in order.

    ``entity_rows`` are (client_id, symbol) pairs or {"client_id": .., "symbol": ..}.
    """
    _checked(feature_set)
    entities = [
        (int(e["client_id"]), str(e["symbol"])) if isinstance(e, dict) else (int(e[0]), e[1])
        for e in entity_rows
    ]
    cache = _cache()
    found: dict[tuple[int, str], dict | None] = {}
    version = None
    try:
        version = cache.get(pointer_key(feature_set))
        tag = UNVERSIONED if version is None else version
        keys = {entry_key(feature_set, tag, c, s): (c, s) for c, s in set(entities)}
        for key, value in cache.get_many(list(keys)).items():
            found[keys[key]] = None if value == _ABSENT else value
    except Exception as exc:  # an unreachable cache must not fail a lookup
        log.warning("feature cache unavailable (%s: %s): reading Parquet", type(exc).__name__, exc)
        version = None
    source = {pair: "cache" for pair in found}

    missing = [pair for pair in dict.fromkeys(entities) if pair not in found]
    fill: dict[str, Any] = {}
    unversioned: dict[str, Any] = {}
    for client_id in sorted({c for c, _ in missing}):
        rows = {r["symbol"]: r for r in read_rows(newest_partition(feature_set, client_id))}
        for pair in (p for p in missing if p[0] == client_id):
            row = rows.get(pair[1])
            found[pair] = _entry(row) if row is not None else None
            source[pair] = "parquet"
            run = row.get("refresh_run_id") if row else None
            value = found[pair] if found[pair] is not None else _ABSENT
            if version is None:
                unversioned[entry_key(feature_set, UNVERSIONED, *pair)] = value
            # Never file a newer refresh's row under the current (older) version.
            elif run is None or run <= version:
                fill[entry_key(feature_set, version, *pair)] = value
    try:
        if fill:
            cache.set_many(fill, timeout=None)
        if unversioned:
            cache.set_many(unversioned, timeout=UNVERSIONED_TTL_SECONDS)
    except Exception as exc:
        log.warning("feature cache unavailable (%s): not filled", type(exc).__name__)
    return [_answer(feature_set, c, s, found[(c, s)], source[(c, s)]) for c, s in entities]


# --- loading a refresh ----------------------------------------------------------------------


def load_refresh(feature_set: str, version: int, partitions: Iterable[str]) -> int:
    """Copy the newest partition of each client of a refresh's ``partitions`` into the
    cache under ``version``, then switch readers to it (one write of the pointer). Return
    the entries loaded.

    The newest partition is what a miss reads, so cached and uncached lookups agree: it
    is the refresh's own, except after a back-dated refresh (``--as-of`` before a newer
    published one), whose older values are kept on the lake but not served. Entries of
    the previous version expire after a day, so a reader that read the old pointer still
    finds them.
    """
    _checked(feature_set)
    parts = (part for p in partitions for part in p.split("/"))
    clients = sorted({int(p.split("=", 1)[1]) for p in parts if p.startswith("client_id=")})
    keys = [key for client_id in clients for key in newest_partition(feature_set, client_id)]
    entries = {
        entry_key(feature_set, version, row["client_id"], row["symbol"]): _entry(row)
        for row in read_rows(keys)
    }
    cache = _cache()
    previous = cache.get(pointer_key(feature_set))
    cache.set_many(entries, timeout=None)
    cache.set(pointer_key(feature_set), int(version), timeout=None)
    if previous is not None and previous != version:
        for key in _keys_of(cache, feature_set, previous):
            cache.touch(key, OLD_VERSION_TTL_SECONDS)
    log.info("feature cache %s: version %s, %d entries", feature_set, version, len(entries))
    return len(entries)


def _keys_of(cache: Any, feature_set: str, version: int) -> list[str]:
    """Return the cached keys of one version, where the backend can list them."""
    if hasattr(cache, "iter_keys"):  # django-redis
        return list(cache.iter_keys(f"features:{feature_set}:v{version}:*"))
    return []  # local memory: entries are culled when the cache is full


def current_version(feature_set: str = DEFAULT_FEATURE_SET) -> int | None:
    """Return the refresh version readers are served from (None: none loaded)."""
    return _cache().get(pointer_key(_checked(feature_set)))
