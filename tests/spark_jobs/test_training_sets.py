"""gold.training_sets: built by main() from a tiny lake, published once, reproducible."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from spark_jobs.common.config import UsageError, parse_args, parse_duration
from spark_jobs.gold.training_sets import next_version
from spark_jobs.main import main
from tests.spark_jobs.builders import event, kline, order, ts, write_bronze

pytestmark = pytest.mark.spark

T, S, X, F_ = "STOP_TRIGGERED", "EXECUTION_SUBMITTED", "EXECUTED", "FAILED"
OUTCOMES = ["EXECUTED", "FAILED", "EXECUTED", "BLOCKED", "EXECUTED"]
AS_OF = "2024-12-28T00:00:00Z"


def scenario() -> tuple[list[dict], list[dict], list[dict]]:
    """Return (events, orders, klines): 6 executions on the 26th, 4 on the 27th, and one
    at 23:30 on the 26th whose label resolves inside the embargo before the test split."""
    triggers = [f"2024-12-26 {10 + i}:00:00" for i in range(6)]
    triggers += [f"2024-12-27 {10 + i}:00:00" for i in range(4)]
    triggers.append("2024-12-26 23:30:00")
    events, orders, klines = [], [], []
    for i, at in enumerate(triggers):
        token, op, client = f"x{i}", 100 + i, 1 + i % 2
        t = ts(at)

        def later(seconds: int, t: datetime = t) -> str:
            return (t + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

        outcome = "EXECUTED" if i == 10 else OUTCOMES[i % len(OUTCOMES)]
        common = {"operation_id": op, "client_id": client}
        events.append(event(token, T, at, **common))
        if outcome == "BLOCKED":
            events.append(event(token, "BLOCKED", later(1), error_message="kill", **common))
        else:
            events.append(event(token, S, later(1), **common))
        if outcome == "EXECUTED":
            slip = "12.5000" if i == 2 else "0.2500"
            events.append(
                event(token, X, later(2), fill_price="94900", slippage_pct=slip, **common)
            )
        if outcome == "FAILED":
            events.append(event(token, F_, later(2), error_message="timeout", **common))
        orders.append(order(op, "BUY", "1", str(96000 + 100 * i), later(-3600), client_id=client))
        for minute in range(20, 0, -1):
            opened = (t - timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")
            klines.append(kline(opened, str(95000 + (minute * 37 + i * 11) % 90), quote_volume="7"))
    return events, orders, klines


@pytest.fixture
def built_lake(spark: SparkSession, lake: Path, tmp_path: Path) -> Path:
    events, orders, klines = scenario()
    write_bronze(lake, "events", events)
    write_bronze(lake, "orders", orders)
    write_bronze(lake, "klines", klines)
    assert run(lake, tmp_path, "silver.stop_executions")[0] == 0
    return lake


def stamp_manifest(lake: Path, dataset: str, run_id: int, sha256: str | None = None) -> str:
    """Give the first file of a bronze dataset a manifest as the exporter writes it (its
    run id and checksum; ``sha256`` overrides the real one). Return the file's key."""
    path = sorted((lake / "bronze" / dataset).rglob("*.parquet"))[0]
    manifest = path.parent / "_metadata" / (path.stem + ".json")
    digest = sha256 or hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.write_text(json.dumps({"rows": 1, "run_id": run_id, "sha256": digest}))
    return str(path.relative_to(lake))


def run(lake: Path, tmp_path: Path, job: str, *args: str) -> tuple[int, dict]:
    result = tmp_path / f"result-{len(list(tmp_path.glob('result-*')))}.json"
    code = main(
        [job, "--lake-uri", str(lake), "--run-id", "9", "--result-file", str(result), *args]
    )
    return code, json.loads(result.read_text())


def samples(version_dir: Path, split: str) -> list[dict]:
    rows = []
    for path in sorted((version_dir / split).rglob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: r["sample_id"])


def as_json(value):
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


STOP_OUTCOME = "gold.training_sets.stop_outcome"


def test_build_publish_once_noop_refuse_next_version_and_scratch_rebuild(
    built_lake: Path, tmp_path: Path
) -> None:
    lake = built_lake
    stamped = stamp_manifest(lake, "klines", run_id=3)
    args = ["--version", "v1.0.0", "--as-of", AS_OF, "--test-from", "2024-12-27"]
    code, result = run(lake, tmp_path, STOP_OUTCOME, *args, "--input-runs",
                       "silver.stop_executions=4")  # fmt: skip
    assert code == 0, result["error"]
    assert result["published"] is True
    root = lake / "gold/training_sets/stop_outcome/v1.0.0"
    doc = json.loads((root / "features.json").read_text())
    train, test = samples(root, "train"), samples(root, "test")

    # Split by time, purged: the 23:30 execution resolves inside the hour before the test.
    assert (len(train), len(test)) == (6, 4)
    assert doc["rows"] == {"train": 6, "test": 4}
    assert doc["split"]["purged"] == 1
    assert doc["split"]["embargo_seconds"] == 3600
    assert doc["split"]["test_start"] == "2024-12-27T00:00:00+00:00"
    last_train = max(r["metadata"]["trigger_time"] for r in train)
    assert last_train < min(r["metadata"]["trigger_time"] for r in test)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["date=2024-12-26"]

    # features.json documents the features, labels, inputs with checksums and job runs.
    assert [f["name"] for f in doc["features"]][:2] == ["stop_distance_pct", "time_to_trigger_sec"]
    assert doc["thresholds"] == {"slippage_breach_pct": 10}
    assert doc["inputs"]["job_runs"] == {"silver.stop_executions": 4}
    klines = doc["inputs"]["bronze.klines"]["files"]
    assert klines
    assert all(len(f["sha256"]) == 64 for f in klines)
    assert [f.get("run_id") for f in klines if f["key"] == stamped] == [3]
    assert doc["label_balance"]["train"]["execution_success"] == pytest.approx(4 / 6)
    checks = {c["check"]: c for c in doc["checks"]}
    assert checks["features_point_in_time"]["passed"], checks["features_point_in_time"]
    assert checks["split_by_time"]["passed"]
    assert checks["row_count_matches_silver"]["passed"]

    # Every sample validates against the JSON Schema features.json carries.
    for row in train + test:
        jsonschema.validate(as_json(row), doc["schema"])
        assert row["metadata"]["version"] == "v1.0.0"
    executed = [r for r in train if r["label"]["execution_success"]]
    assert executed
    assert all(r["label"]["execution_time_sec"] == 2.0 for r in executed)
    assert [r["label"]["slippage_breach"] for r in train].count(True) == 1

    # The same build again: a verified no-op. Other parameters for the version: refused.
    before = sorted(p.stat().st_mtime_ns for p in root.rglob("*"))
    code, again = run(lake, tmp_path, STOP_OUTCOME, *args)
    assert (code, again["details"].get("noop")) == (0, True), again["error"]
    code, again = run(lake, tmp_path, STOP_OUTCOME, "--version", "v1.0.0")
    assert (code, again["details"].get("noop")) == (0, True), again["error"]
    assert sorted(p.stat().st_mtime_ns for p in root.rglob("*")) == before
    code, refused = run(lake, tmp_path, STOP_OUTCOME, "--version", "v1.0.0", "--embargo", "2h")
    assert code == 2
    assert "never rewritten" in refused["error"]

    # Without --version: the next minor version.
    code, nxt = run(lake, tmp_path, STOP_OUTCOME, "--as-of", AS_OF, "--test-fraction", "0.3")
    assert (code, nxt["details"]["version"]) == (0, "v1.1.0"), nxt["error"]

    # Rebuilt into a scratch root from the same inputs: identical rows and hashes.
    scratch = tmp_path / "scratch"
    code, rebuilt = run(lake, tmp_path, STOP_OUTCOME, *args, "--target-uri", str(scratch))
    assert code == 0, rebuilt["error"]
    copy = scratch / "gold/training_sets/stop_outcome/v1.0.0"
    assert json.loads((copy / "features.json").read_text())["content_hash"] == doc["content_hash"]
    assert samples(copy, "train") == train
    assert samples(copy, "test") == test


def test_slippage_prediction_and_a_failed_split_check(built_lake: Path, tmp_path: Path) -> None:
    code, result = run(built_lake, tmp_path, "gold.training_sets.slippage_prediction",
                       "--as-of", AS_OF, "--test-from", "2024-12-27")  # fmt: skip
    assert code == 0, result["error"]
    root = built_lake / "gold/training_sets/slippage_prediction/v1.0.0"
    rows = samples(root, "train") + samples(root, "test")
    assert sorted(str(r["label"]["slippage_pct"]) for r in rows) == ["0.2500"] * 5 + ["12.5000"]

    # A test split with no sample fails the critical split check, and a bronze file that
    # differs from its manifest fails another: nothing is published.
    stamp_manifest(built_lake, "orders", run_id=2, sha256="0" * 64)
    code, failed = run(built_lake, tmp_path, STOP_OUTCOME, "--as-of", AS_OF,
                       "--test-from", "2025-01-01")  # fmt: skip
    assert code == 3
    assert "split_by_time" in failed["error"]
    assert "bronze_inputs_match_manifests (1 bronze files differ" in failed["error"]
    assert not (built_lake / "gold/training_sets/stop_outcome").exists()


@pytest.mark.parametrize(
    ("existing", "expected"),
    [([], "v1.0.0"), (["v1.0.0"], "v1.1.0"), (["v1.2.3", "v1.10.0", "junk"], "v1.11.0"),
     (["v2.0.0", "v1.9.0"], "v2.1.0")],
)  # fmt: skip
def test_next_version(existing: list[str], expected: str) -> None:
    assert next_version(existing) == expected


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([STOP_OUTCOME, "--version", "1.0"], "not a version"),
        ([STOP_OUTCOME, "--test-from", "2024-12-27", "--test-fraction", "0.2"], "not both"),
        ([STOP_OUTCOME, "--test-fraction", "1.5"], "between 0 and 1"),
        ([STOP_OUTCOME, "--embargo", "soon"], "not a duration"),
        ([STOP_OUTCOME, "--as-of", "yesterday"], "not an ISO timestamp"),
        (["silver.operations", "--version", "v1.0.0"], "only for gold jobs"),
    ],
)
def test_gold_arguments_refused(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args([args[0], "--lake-uri", "/tmp/lake", "--run-id", "1", *args[1:]])
