"""Online feature lookups: statuses, cache hit and miss, atomic refresh, Redis down."""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import caches

from datalake import features
from datalake.features import Status, get_latest_features, get_online_features, load_refresh
from tests.datalake.feature_rows import row, write_partition

OLD = datetime(2024, 12, 27, 14, tzinfo=UTC)


@pytest.fixture
def lake(tmp_path, settings):
    settings.DATALAKE_URI = str(tmp_path / "lake")
    caches["features"].clear()
    yield tmp_path / "lake"
    with contextlib.suppress(Exception):  # a test may have pointed the alias at a dead Redis
        caches["features"].clear()


def fresh() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def test_present_stale_and_not_found(lake) -> None:
    now = fresh()
    write_partition(lake, 1, now.date().isoformat(), [row("BTCUSDC", now, 5)])
    write_partition(lake, 2, "2024-12-27", [row("ETHUSDC", OLD, 3)])

    present = get_latest_features(client_id=1, symbol="BTCUSDC")
    assert present["status"] == Status.PRESENT
    assert present["as_of"] == now
    assert present["version"] == "sha256:test"
    assert present["features"]["stop_distance_pct"] == Decimal("2.5000")
    assert present["features"]["volatility_15m"] is None
    assert "stop_price" not in present["features"]

    stale = get_latest_features(2, "ETHUSDC")
    assert stale["status"] == Status.STALE  # returned, marked stale
    assert stale["features"]["volume_24h"] == Decimal("1234.50000000")

    assert get_latest_features(1, "ETHUSDC")["status"] == Status.NOT_FOUND
    assert get_latest_features(99, "BTCUSDC")["status"] == Status.NOT_FOUND
    with pytest.raises(features.UnknownFeatureSet):
        get_latest_features(1, "BTCUSDC", feature_set="nope")


def test_newest_partition_of_the_client_wins(lake) -> None:
    write_partition(lake, 1, "2024-12-26", [row("BTCUSDC", OLD - timedelta(days=1), 2, "9.0")])
    write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 3, "1.0")])
    assert get_latest_features(1, "BTCUSDC")["features"]["stop_distance_pct"] == Decimal("1.0")


def test_a_refresh_is_served_from_the_cache_and_a_miss_fills_it(lake) -> None:
    key = write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 5), row("ETHUSDC", OLD, 5)])
    assert load_refresh("stop_execution_features", 5, [key]) == 2
    assert features.current_version() == 5
    # The lake's file is gone: only the cache can answer now.
    for path in (lake / key).iterdir():
        path.unlink()
    hit = get_latest_features(1, "BTCUSDC")
    assert (hit["status"], hit["source"]) == (Status.STALE, "cache")

    write_partition(lake, 3, "2024-12-27", [row("SOLUSDC", OLD, 5)])
    miss = get_latest_features(3, "SOLUSDC")
    assert miss["source"] == "parquet"
    assert get_latest_features(3, "SOLUSDC")["source"] == "cache"  # filled
    assert get_latest_features(3, "XRPUSDC")["source"] == "parquet"
    assert get_latest_features(3, "XRPUSDC")["source"] == "cache"  # NOT_FOUND, cached


def test_a_process_without_the_pointer_caches_what_it_read_for_a_short_time(lake) -> None:
    """A web worker with the local-memory cache never sees the refresh's pointer (it was
    set in the refreshing process's memory): it still serves repeated lookups from its
    cache, for UNVERSIONED_TTL_SECONDS, and a refresh loaded later takes over."""
    key = write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 5)])
    assert features.current_version() is None
    assert get_latest_features(1, "BTCUSDC")["source"] == "parquet"
    assert get_latest_features(1, "BTCUSDC")["source"] == "cache"
    assert get_latest_features(1, "SOLUSDC")["source"] == "parquet"
    assert get_latest_features(1, "SOLUSDC")["source"] == "cache"  # NOT_FOUND too
    assert features.UNVERSIONED_TTL_SECONDS <= 300

    newer = write_partition(lake, 1, "2024-12-28", [row("BTCUSDC", OLD + timedelta(days=1), 6)])
    load_refresh("stop_execution_features", 6, [newer])
    served = get_latest_features(1, "BTCUSDC")
    assert (served["source"], served["as_of"]) == ("cache", OLD + timedelta(days=1))
    assert key != newer


def test_batch_answers_in_order(lake) -> None:
    write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 5)])
    write_partition(lake, 2, "2024-12-27", [row("ETHUSDC", OLD, 5)])
    answers = get_online_features(
        [{"client_id": 2, "symbol": "ETHUSDC"}, (1, "BTCUSDC"), (1, "NOPE")]
    )
    assert [(a["client_id"], a["symbol"], a["status"]) for a in answers] == [
        (2, "ETHUSDC", Status.STALE),
        (1, "BTCUSDC", Status.STALE),
        (1, "NOPE", Status.NOT_FOUND),
    ]


def test_a_reader_during_a_refresh_sees_one_version_whole(lake) -> None:
    pairs = [(c, s) for c in (1, 2, 3) for s in ("BTCUSDC", "ETHUSDC", "SOLUSDC")]

    def publish(version: int) -> list[str]:
        """Write the version's rows as the newest partition of each client (a refresh
        loads the newest), each version with its own as_of; return the partitions."""
        as_of = OLD + timedelta(days=version)
        return [
            write_partition(lake, c, "2024-12-27", [row(s, as_of, version) for s in ("BTCUSDC",
                            "ETHUSDC", "SOLUSDC")])
            for c in (1, 2, 3)
        ]  # fmt: skip

    load_refresh("stop_execution_features", 1, publish(1))
    stop, seen, mixed = threading.Event(), set(), []

    def reader() -> None:
        while not stop.is_set():
            instants = {a["as_of"] for a in get_online_features(pairs)}
            if len(instants) > 1:
                mixed.append(instants)
            seen.update(instants)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(30):
            load_refresh("stop_execution_features", 2, publish(2))
            load_refresh("stop_execution_features", 1, publish(1))
    finally:
        stop.set()
        thread.join()
    assert not mixed
    assert seen  # the reader ran


def test_redis_down_falls_back_to_parquet_and_says_so(lake, settings, caplog) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "features": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 5)])
    with caplog.at_level(logging.WARNING, logger="datalake"):
        answer = get_latest_features(1, "BTCUSDC")
    assert answer["source"] == "parquet"
    assert answer["features"]["stop_distance_pct"] == Decimal("2.5000")
    assert "feature cache unavailable" in caplog.text


def test_redis_cache_serves_a_refresh(lake, settings, redis_url) -> None:
    base = redis_url.rsplit("/", 1)[0]
    settings.CACHES = {
        **settings.CACHES,
        "features": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"{base}/13",
                     "KEY_PREFIX": "test-features"},
    }  # fmt: skip
    caches["features"].clear()
    try:
        key = write_partition(lake, 1, "2024-12-27", [row("BTCUSDC", OLD, 5)])
        load_refresh("stop_execution_features", 5, [key])
        key2 = write_partition(lake, 1, "2024-12-28", [row("BTCUSDC", OLD, 6, "3.0")])
        load_refresh("stop_execution_features", 6, [key2])
        answer = get_latest_features(1, "BTCUSDC")
        assert (answer["source"], answer["features"]["stop_distance_pct"]) == (
            "cache",
            Decimal("3.0"),
        )
        old = features.entry_key("stop_execution_features", 5, 1, "BTCUSDC")
        assert 0 < caches["features"].ttl(old) <= features.OLD_VERSION_TTL_SECONDS
    finally:
        caches["features"].clear()
