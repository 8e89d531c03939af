"""LakeFS: the one-job listing, hashing and reading of a dataset's files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from spark_jobs.common.lake import LakeFS

pytestmark = pytest.mark.spark


def write(path: Path, data: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_digests_and_texts_cover_every_file_once(spark: SparkSession, tmp_path: Path) -> None:
    root = tmp_path / "bronze" / "orders"
    expected = {}
    for client, day in [(1, "2025-01-01"), (1, "2025-01-02"), (22, "2025-01-01")]:
        for part in range(2):
            relative = f"client_id={client}/date={day}/part-{part}.parquet"
            expected[relative] = hashlib.sha256(
                write(root / relative, os.urandom(3000))
            ).hexdigest()
    manifest = {"rows": 3, "run_id": 7, "sha256": "ab" * 32}
    write(root / "client_id=1/date=2025-01-01/_metadata/part-0.json", json.dumps(manifest).encode())
    write(root / "client_id=1/date=2025-01-01/.part-1.parquet.crc", b"not data")
    write(root / "client_id=1/date=2025-01-02/.tmp-run/part-9.parquet", b"in flight")
    write(root / "client_id=1/date=2025-01-02/_SUCCESS", b"")
    fs = LakeFS(spark)

    assert fs.digests(root.as_uri()) == expected
    assert fs.texts(root.as_uri(), "*.json") == {
        "client_id=1/date=2025-01-01/_metadata/part-0.json": json.dumps(manifest)
    }
    assert fs.digests((tmp_path / "missing").as_uri()) == {}
