"""gold.training_sets: versioned, point-in-time training sets of stop executions.

``gold/training_sets/<name>/vMAJOR.MINOR.PATCH/{train,test}/date=YYYY-MM-DD/*.parquet``
plus ``features.json`` at the version's root. One sample per execution of silver.stop_executions
that the set's sample rule keeps (:data:`TRAINING_SETS`); its features come from
:mod:`spark_jobs.gold.features` at the execution's trigger time ``t``.

A version is built once and never rewritten. It is staged under the run's staging
directory like silver, checked there, and published by one move of the whole version
directory (there are no partitions of an older build to swap: the partition-by-partition
publish of :mod:`spark_jobs.common.output` does not apply). Building a published version
again is a no-op when its recorded fingerprint (input file checksums, code version, build
parameters) matches and its published rows still hash to the recorded content hashes;
otherwise it is refused.

Split by time, never at random: samples triggered before the test start are train, the
others test; a train sample whose label resolves at or after ``test start - embargo`` is
dropped (purged) and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, StructType

from spark_jobs.common.bronze import BRONZE_KLINES, BRONZE_ORDERS
from spark_jobs.common.checks import (
    Check,
    CheckResult,
    CountCheck,
    RowCheck,
    UniqueCheck,
    check_partitions,
    failed_critical,
)
from spark_jobs.common.config import JobConfig, parse_version
from spark_jobs.common.datasets import Layout, read_files
from spark_jobs.common.lake import LakeFS, dataset_uri, staging_root
from spark_jobs.common.report import ChecksFailed, Refused, Report
from spark_jobs.gold import features
from spark_jobs.gold.features import (
    FEATURE_NAMES,
    FEATURES,
    REQUIRED,
    SCOPE,
    compute_features,
    features_struct,
    recheck,
)
from spark_jobs.silver import operations, stop_executions
from spark_jobs.silver.stop_executions import uuid5_column

log = logging.getLogger(__name__)

ROOT = "gold/training_sets"
SPLITS = ("train", "test")
PARTITIONS = ("split", "date")
SAMPLE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "robson:gold.training_sets")
SLIPPAGE_BREACH_PCT = 10
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_EMBARGO_SECONDS = 3600
RECHECK_SAMPLES = 50
BALANCE = (0.10, 0.90)
OUTLIER_SD = 3
FINAL = ("EXECUTED", "FAILED", "BLOCKED")


@dataclass(frozen=True)
class Label:
    """A label column as ``features.json`` describes it."""

    name: str
    type: str
    nullable: bool
    definition: str


LABELS = {
    label.name: label
    for label in (
        Label("execution_success", "boolean", False, "the execution's final status is EXECUTED"),
        Label(
            "slippage_breach",
            "boolean",
            True,
            f"|slippage_pct| > {SLIPPAGE_BREACH_PCT} (percent); null without a slippage",
        ),
        Label(
            "execution_time_sec",
            "double",
            True,
            "executed_at - t in seconds; null when not executed",
        ),
        Label("slippage_pct", "decimal(10,4)", False, "the realised slippage, in percent"),
    )
}


def label_column(name: str) -> Column:
    """Return the Spark expression of label ``name`` over a silver.stop_executions row."""
    executed = F.col("status") == "EXECUTED"
    seconds = (F.unix_micros("executed_at") - F.unix_micros("t")) / F.lit(1_000_000.0)
    return {
        "execution_success": executed,
        "slippage_breach": F.when(
            F.col("slippage_pct").isNotNull(), F.abs("slippage_pct") > SLIPPAGE_BREACH_PCT
        ),
        "execution_time_sec": F.when(executed, seconds),
        "slippage_pct": F.col("slippage_pct"),
    }[name]


@dataclass(frozen=True)
class TrainingSet:
    """A training set: which executions are samples, and their labels."""

    name: str
    statuses: tuple[str, ...]
    sample_rule: str
    labels: tuple[str, ...]
    needs_slippage: bool = False


TRAINING_SETS = {
    spec.name: spec
    for spec in (
        TrainingSet(
            "stop_outcome",
            FINAL,
            "one sample per execution of silver.stop_executions whose final status"
            " (EXECUTED, FAILED, BLOCKED) was reached before --as-of, whose operation has an"
            " entry fill before its trigger time t",
            ("execution_success", "slippage_breach", "execution_time_sec"),
        ),
        TrainingSet(
            "slippage_prediction",
            ("EXECUTED",),
            "one sample per EXECUTED execution of silver.stop_executions, executed before"
            " --as-of, with a slippage_pct, whose operation has an entry fill before its"
            " trigger time t",
            ("slippage_pct", "slippage_breach", "execution_time_sec"),
            needs_slippage=True,
        ),
    )
}


def version_uri(root: str, name: str, version: str) -> str:
    """Return the directory of one version of a training set under lake ``root``."""
    return f"{root}/{ROOT}/{name}/{version}"


def next_version(existing: list[str]) -> str:
    """Return the next minor version after the highest of ``existing`` (v1.0.0 if none)."""
    versions = []
    for name in existing:
        try:
            versions.append(parse_version(name))
        except ValueError:
            continue
    if not versions:
        return "v1.0.0"
    major, minor, _ = max(versions)
    return f"v{major}.{minor + 1}.0"


# --- samples, features, split ------------------------------------------------------------


def select_samples(executions: DataFrame, spec: TrainingSet, as_of: datetime) -> DataFrame:
    """Return the executions the sample rule keeps, as feature samples plus label inputs."""
    kept = executions.filter(
        F.col("status").isin(*spec.statuses)
        & F.col("triggered_at").isNotNull()
        & F.col("resolved_at").isNotNull()
        & (F.col("resolved_at") < F.lit(as_of))
    )
    if spec.needs_slippage:
        kept = kept.filter(F.col("slippage_pct").isNotNull())
    return kept.select(
        F.lit(0).alias(SCOPE),
        F.col("execution_id").alias("sample_key"),
        "client_id",
        "symbol",
        "operation_id",
        "stop_price",
        F.col("triggered_at").alias("t"),
        "resolved_at",
        "status",
        "slippage_pct",
        "executed_at",
        "source_event_ids",
    )


def test_start(featured: DataFrame, config: JobConfig) -> datetime | None:
    """Return the first instant of the test split: --test-from's midnight (UTC), else the
    trigger time at the (1 - test fraction) rank; None with no sample."""
    if config.test_from is not None:
        return datetime.combine(config.test_from, datetime.min.time(), tzinfo=UTC)
    fraction = config.test_fraction or DEFAULT_TEST_FRACTION
    total = featured.count()
    if total == 0:
        return None
    rank = min(int(total * (1 - fraction)), total - 1)
    micros = F.unix_micros("t").alias("t")
    row = featured.select(micros).orderBy("t").offset(rank).limit(1).first()
    # As epoch micros: a collected timestamp would come back in the driver's local zone.
    return datetime.fromtimestamp(row["t"] / 1_000_000, UTC)


def assign_split(featured: DataFrame, start: datetime, embargo_seconds: int) -> DataFrame:
    """Return ``featured`` with ``split`` (train/test) and ``_purged`` (a train sample whose
    label resolves at or after ``start - embargo``)."""
    cutoff = start - timedelta(seconds=embargo_seconds)
    train = F.col("t") < F.lit(start)
    return featured.select(
        "*",
        F.when(train, "train").otherwise("test").alias("split"),
        (train & (F.col("resolved_at") >= F.lit(cutoff))).alias("_purged"),
    )


def to_samples(frame: DataFrame, spec: TrainingSet, version: str, as_of: datetime) -> DataFrame:
    """Return the published rows: sample_id, client_id, symbol, features, label, metadata,
    split, date (of t, UTC)."""
    label = F.struct(*[label_column(n).cast(LABELS[n].type).alias(n) for n in spec.labels])
    metadata = F.struct(
        F.lit(version).alias("version"),
        F.lit(as_of).cast("timestamp").alias("generated_at"),
        F.col("source_event_ids").alias("source_event_ids"),
        F.col("sample_key").alias("execution_id"),
        F.col("t").alias("trigger_time"),
        F.col("resolved_at").alias("label_resolved_at"),
    )
    key = F.concat(F.lit(version + "/"), F.col("sample_key"))
    return frame.select(
        uuid5_column(key, SAMPLE_NAMESPACE).alias("sample_id"),
        "client_id",
        "symbol",
        features_struct().alias("features"),
        label.alias("label"),
        metadata.alias("metadata"),
        "split",
        F.to_date("t").alias("date"),
    )


# --- checks ------------------------------------------------------------------------------


def quality_checks(spec: TrainingSet, expected_rows: int) -> list[Check]:
    """Return the critical row checks of a staged training set."""
    checks: list[Check] = [
        RowCheck(f"{name}_not_null", F.col(f"features.{name}").isNull(), "nulls")
        for name in REQUIRED
    ]
    checks += [
        RowCheck(f"label_{name}_not_null", F.col(f"label.{name}").isNull(), "nulls")
        for name in spec.labels
        if not LABELS[name].nullable
    ]
    checks.append(UniqueCheck("sample_id_unique", ("sample_id",)))
    checks.append(
        CountCheck(
            "row_count_matches_silver",
            expected_rows,
            "silver executions under the sample rule, less the purged and those without"
            " an entry fill before t",
        )
    )
    return checks


def leakage_recheck(
    dataset: str,
    featured: DataFrame,
    inputs: tuple[DataFrame, DataFrame, DataFrame],
    how_many: int,
    seed: str,
) -> CheckResult:
    """Recompute the features of ``how_many`` pseudo-random samples from the inputs cut at
    each sample's t (the same definitions) and require equality."""
    picked = (
        featured.orderBy(F.xxhash64("sample_key", F.lit(seed)))
        .limit(how_many)
        .select(SCOPE, "sample_key", "client_id", "symbol", "operation_id", "stop_price", "t",
                *FEATURE_NAMES)
    )  # fmt: skip
    checked, differ, examples = recheck(picked.localCheckpoint(), inputs)
    observed = f"{differ} of {checked} rechecked samples differ"
    if differ:
        observed += ": " + ", ".join(examples)
    return CheckResult(dataset, "", "features_point_in_time", differ == 0, observed, True)


def split_check(
    dataset: str, staged: DataFrame, start: datetime | None, embargo_seconds: int
) -> CheckResult:
    """Require every train sample to trigger before every test sample, none to resolve at
    or after test start - embargo, and both splits to hold samples."""
    if start is None:
        return CheckResult(dataset, "", "split_by_time", False, "no samples", True)
    cutoff = start - timedelta(seconds=embargo_seconds)
    train = F.col("split") == "train"
    at = F.unix_micros("metadata.trigger_time")
    row = staged.agg(
        F.max(F.when(train, at)).alias("last_train"),
        F.min(F.when(~train, at)).alias("first_test"),
        F.count_if(train).alias("train"),
        F.count_if(~train).alias("test"),
        F.count_if(train & (F.col("metadata.label_resolved_at") >= F.lit(cutoff))).alias("late"),
    ).first()
    ordered = (
        row["last_train"] is None
        or row["first_test"] is None
        or (row["last_train"] < row["first_test"])
    )
    passed = ordered and row["late"] == 0 and row["train"] > 0 and row["test"] > 0
    observed = (
        f"train {row['train']} (last t {_iso(row['last_train'])}), test {row['test']} (first t"
        f" {_iso(row['first_test'])}); {row['late']} train labels resolve at or after"
        f" {cutoff.isoformat()}"
    )
    return CheckResult(dataset, "", "split_by_time", passed, observed, True)


def _iso(micros: int | None) -> str:
    return "none" if micros is None else datetime.fromtimestamp(micros / 1e6, UTC).isoformat()


def balance_and_outliers(
    dataset: str, staged: DataFrame, spec: TrainingSet
) -> tuple[list[CheckResult], dict[str, int], dict[str, dict[str, float | None]]]:
    """Return (warnings, rows per split, share of true per boolean label per split)."""
    booleans = [n for n in spec.labels if LABELS[n].type == "boolean"]
    per_split = {
        row["split"]: row
        for row in staged.groupBy("split")
        .agg(
            F.count(F.lit(1)).alias("_rows"),
            *[F.avg(F.col(f"label.{n}").cast("double")).alias(n) for n in booleans],
        )
        .collect()
    }
    rows = {split: int(per_split[split]["_rows"]) if split in per_split else 0 for split in SPLITS}
    balance = {
        split: {n: (per_split[split][n] if split in per_split else None) for n in booleans}
        for split in SPLITS
    }
    results = []
    low, high = BALANCE
    for split in SPLITS:
        for name, share in balance[split].items():
            passed = share is not None and low <= share <= high
            shown = "n/a" if share is None else f"{share:.1%}"
            results.append(
                CheckResult(dataset, f"split={split}", f"label_balance_{name}", passed,
                            f"{shown} true; wanted {low:.0%}..{high:.0%}", False)
            )  # fmt: skip
    numeric = [f.name for f in FEATURES]
    stats = staged.agg(
        *[F.avg(f"features.{n}").cast("double").alias(f"m_{n}") for n in numeric],
        *[F.stddev_samp(F.col(f"features.{n}").cast("double")).alias(f"s_{n}") for n in numeric],
    ).first()
    beyond = []
    for name in numeric:
        mean, sd = stats[f"m_{name}"], stats[f"s_{name}"]
        value = F.col(f"features.{name}").cast("double")
        if mean is None or sd is None:
            beyond.append(F.lit(0).alias(name))
        else:
            beyond.append(F.count_if(F.abs(value - mean) > OUTLIER_SD * sd).alias(name))
    counts = staged.agg(*beyond).first()
    for name in numeric:
        results.append(
            CheckResult(dataset, "", f"{name}_outliers_{OUTLIER_SD}sd", counts[name] == 0,
                        f"{counts[name]} rows beyond ±{OUTLIER_SD} sd", False)
        )  # fmt: skip
    return results, rows, balance


def content_hash(frame: DataFrame) -> str:
    """Return a hash of the rows of ``frame`` that ignores their order and files."""
    digest = F.sha2(F.to_json(F.struct(*sorted(frame.columns))), 256)
    wide = DecimalType(38, 0)
    row = frame.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.conv(F.substring(digest, 1, 15), 16, 10).cast(wide)).alias("a"),
        F.sum(F.conv(F.substring(digest, 16, 15), 16, 10).cast(wide)).alias("b"),
    ).first()
    return hashlib.sha256(f"{row['n']}:{row['a'] or 0}:{row['b'] or 0}".encode()).hexdigest()


# --- features.json -----------------------------------------------------------------------


def _json_type(spark_type: str, nullable: bool) -> dict[str, Any]:
    kind = {"boolean": "boolean", "int": "integer", "bigint": "integer", "string": "string"}.get(
        spark_type, "number"
    )
    schema: dict[str, Any] = {"type": [kind, "null"] if nullable else kind}
    if spark_type == "timestamp":
        schema = {"type": ["string", "null"] if nullable else "string", "format": "date-time"}
    return schema


def sample_schema(spec: TrainingSet) -> dict[str, Any]:
    """Return the JSON Schema (draft-07) of one sample, timestamps as ISO strings."""

    def struct(fields: list[tuple[str, str, bool]]) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [name for name, _, _ in fields],
            "properties": {name: _json_type(kind, nullable) for name, kind, nullable in fields},
        }

    metadata = struct(
        [("version", "string", False), ("generated_at", "timestamp", False),
         ("execution_id", "string", False), ("trigger_time", "timestamp", False),
         ("label_resolved_at", "timestamp", False)]
    )  # fmt: skip
    metadata["required"].append("source_event_ids")
    metadata["properties"]["source_event_ids"] = {
        "type": ["array", "null"],
        "items": {"type": "string"},
    }
    metadata["properties"]["version"]["pattern"] = r"^v\d+\.\d+\.\d+$"
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"gold.training_sets.{spec.name} sample",
        "type": "object",
        "additionalProperties": False,
        "required": ["sample_id", "client_id", "symbol", "features", "label", "metadata"],
        "properties": {
            "sample_id": {"type": "string", "format": "uuid"},
            "client_id": {"type": "integer"},
            "symbol": {"type": "string"},
            "features": struct([(f.name, f.type, f.nullable) for f in FEATURES]),
            "label": struct([(n, LABELS[n].type, LABELS[n].nullable) for n in spec.labels]),
            "metadata": metadata,
            "date": {"type": "string", "format": "date"},
            "split": {"type": "string", "enum": list(SPLITS)},
        },
    }


def code_version() -> str:
    """Return a hash of the source of the modules that define a training set's rows."""
    digest = hashlib.sha256()
    for name in (
        "spark_jobs.gold.features",
        "spark_jobs.gold.training_sets",
        "spark_jobs.silver.operations",
    ):
        module = sys.modules[name]
        source = module.__loader__.get_source(name) or ""  # type: ignore[union-attr]
        digest.update(name.encode() + b"\0" + source.encode())
    return "sha256:" + digest.hexdigest()[:16]


# --- inputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFiles:
    """The data files a build reads, per dataset, with their checksums."""

    files: dict[str, dict[str, str]]  # dataset -> lake key -> sha256
    runs: dict[str, int]  # lake key -> the JobRun that wrote it (bronze manifests)
    mismatched: tuple[str, ...] = ()  # bronze files whose sha256 differs from the manifest's

    def keys(self, dataset: str) -> list[str]:
        return sorted(self.files.get(dataset, {}))


def list_inputs(fs: LakeFS, root: str, layouts: list[Layout], last_date: str) -> InputFiles:
    """Return every data file of ``layouts`` in partitions dated up to ``last_date``, with
    its SHA-256 and, for bronze, the run that wrote it (from its ``_metadata/`` manifest,
    whose checksum must match). One Spark job per dataset hashes the files, one more
    reads bronze manifests (:meth:`LakeFS.digests`)."""
    found: dict[str, dict[str, str]] = {}
    runs: dict[str, int] = {}
    mismatched: list[str] = []
    for layout in layouts:
        uri = dataset_uri(root, layout.dataset)
        prefix = layout.dataset.replace(".", "/", 1)
        bronze = prefix.startswith("bronze/")
        manifests = fs.texts(uri, "*.json") if bronze else {}
        files: dict[str, str] = {}
        for relative, sha in sorted(fs.digests(uri).items()):
            *directories, name = relative.split("/")
            values = dict(d.split("=", 1) for d in directories if "=" in d)
            if len(directories) != len(values) or list(values) != list(layout.partition_by):
                continue  # not in one of the dataset's partitions
            if values.get("date", "") > last_date:
                continue
            key = f"{prefix}/{relative}"
            files[key] = sha
            stem = name.removesuffix(".parquet")
            manifest = "/".join([*directories, "_metadata", f"{stem}.json"])
            recorded = json.loads(manifests[manifest]) if manifest in manifests else {}
            if recorded.get("run_id") is not None:
                runs[key] = int(recorded["run_id"])
            if recorded.get("sha256") not in (None, sha):
                mismatched.append(key)
        found[layout.dataset] = files
    return InputFiles(found, runs, tuple(mismatched))


def describe_inputs(inputs: InputFiles, runs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Return the ``inputs`` section of features.json."""
    described: dict[str, Any] = {}
    for dataset, files in sorted(inputs.files.items()):
        partitions = sorted({key.rsplit("/", 1)[0].split("/", 2)[2] for key in files})
        described[dataset] = {
            "partitions": partitions,
            "files": [
                {
                    "key": key,
                    "sha256": sha,
                    **({"run_id": inputs.runs[key]} if key in inputs.runs else {}),
                }
                for key, sha in sorted(files.items())
            ],
        }
    described["job_runs"] = {dataset: int(run) for dataset, run in runs}
    return described


def fingerprint(inputs: InputFiles, code: str, parameters: dict[str, Any]) -> str:
    payload = json.dumps(
        {"inputs": inputs.files, "code": code, "parameters": parameters}, sort_keys=True
    )
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


# --- entry point -------------------------------------------------------------------------


def read_split(spark: SparkSession, uri: str, schema: StructType, split: str) -> DataFrame:
    """Return one split of a version directory, with its ``date`` and ``split`` columns."""
    fs = LakeFS(spark)
    path = f"{uri}/{split}"
    if not fs.exists(path):
        return spark.createDataFrame([], schema).withColumn("split", F.lit(split))
    return (
        spark.read.schema(schema)
        .option("pathGlobFilter", "*.parquet")
        .option("basePath", path)
        .parquet(path)
        .withColumn("split", F.lit(split))
    )


def read_version(spark: SparkSession, uri: str, schema: StructType) -> DataFrame:
    """Return both splits of a version directory (``schema`` includes ``date``)."""
    return read_split(spark, uri, schema, "train").unionByName(
        read_split(spark, uri, schema, "test")
    )


def split_hashes(frame: DataFrame) -> dict[str, str]:
    return {s: content_hash(frame.filter(F.col("split") == s).drop("split")) for s in SPLITS}


def run(spark: SparkSession, config: JobConfig, report: Report) -> None:
    """Build one version of the training set named by the job (gold.training_sets.<name>)."""
    spec = TRAINING_SETS[config.job.rsplit(".", 1)[-1]]
    dataset = f"gold.training_sets.{spec.name}"
    target = config.target_uri or config.lake_uri
    fs = LakeFS(spark)
    existing = fs.list_dirs(f"{target}/{ROOT}/{spec.name}")
    version = config.version or next_version(existing)
    live = version_uri(target, spec.name, version)
    recorded = json.loads(fs.read_text(f"{live}/features.json")) if version in existing else None

    given = recorded["parameters"] if recorded else {}
    as_of = config.as_of or (
        datetime.fromisoformat(given["as_of"])
        if recorded
        else datetime.now(UTC).replace(microsecond=0)
    )
    embargo = config.embargo_seconds
    if embargo is None:
        embargo = given.get("embargo_seconds", DEFAULT_EMBARGO_SECONDS)
    test_from, fraction = config.test_from, config.test_fraction
    if test_from is None and fraction is None and recorded:
        test_from = given.get("test_from") and datetime.fromisoformat(given["test_from"]).date()
        fraction = given.get("test_fraction")
    if test_from is None and fraction is None:
        fraction = DEFAULT_TEST_FRACTION
    config = replace(
        config, as_of=as_of, test_from=test_from, test_fraction=fraction, embargo_seconds=embargo
    )
    parameters = {
        "name": spec.name,
        "version": version,
        "as_of": as_of.isoformat(),
        "test_from": test_from.isoformat() if test_from else None,
        "test_fraction": fraction if test_from is None else None,
        "embargo_seconds": embargo,
        "recheck_samples": RECHECK_SAMPLES,
        "slippage_breach_pct": SLIPPAGE_BREACH_PCT,
    }
    report.details.update({"dataset": dataset, "version": version, "parameters": parameters})
    report.scope = f"{spec.name} {version} as of {as_of.isoformat()}"

    started = time.monotonic()
    layouts = [stop_executions.LAYOUT, BRONZE_ORDERS, BRONZE_KLINES]
    inputs = list_inputs(fs, config.lake_uri, layouts, as_of.date().isoformat())
    code = code_version()
    print_ = fingerprint(inputs, code, parameters)
    report.seconds["inputs"] = round(time.monotonic() - started, 3)
    schema = None

    if recorded is not None:
        if recorded.get("fingerprint") != print_:
            raise Refused(
                f"{dataset} {version} is published and never rewritten; this build's inputs,"
                " code or parameters differ from its recorded ones: build a new version"
                " (leave out --version for the next one)"
            )
        published = read_version(spark, live, _stored_schema(spark, live))
        hashes = split_hashes(published)
        if hashes != recorded["content_hash"]:
            raise ChecksFailed(
                f"{dataset} {version}: published rows do not match their recorded checksums"
                f" ({hashes} != {recorded['content_hash']})"
            )
        report.details["noop"] = True
        report.checks = [
            CheckResult(dataset, "", "published_version_verified", True,
                        f"content hashes match features.json: {hashes}", True).as_dict()
        ]  # fmt: skip
        report.outputs[dataset] = sum(recorded["rows"].values())
        log.info("%s %s already published from the same inputs: verified", dataset, version)
        return

    executions = read_files(spark, config.lake_uri, stop_executions.LAYOUT,
                            inputs.keys(stop_executions.DATASET))  # fmt: skip
    orders = read_files(spark, config.lake_uri, BRONZE_ORDERS, inputs.keys("bronze.orders"))
    klines = read_files(spark, config.lake_uri, BRONZE_KLINES, inputs.keys("bronze.klines"))
    # Each input is read once: every feature branch, the counts and the leakage recheck
    # use them again (unpersisted, silver alone was scanned eight times).
    feature_inputs = features.persisted_inputs(operations.fills(orders), klines, executions)

    started = time.monotonic()
    candidates = select_samples(executions, spec, as_of).persist()
    featured = compute_features(candidates, *feature_inputs).persist()
    try:
        report.inputs[stop_executions.DATASET] = candidates.count()
        total = featured.count()
        with_entry = featured.filter(F.col("stop_distance_pct").isNotNull())
        start = test_start(with_entry, config)
        split = assign_split(with_entry, start or as_of, embargo)
        counts = split.agg(F.count(F.lit(1)).alias("n"), F.count_if("_purged").alias("p")).first()
        without_entry, purged = total - counts["n"], counts["p"]
        report.seconds["features"] = round(time.monotonic() - started, 3)

        started = time.monotonic()
        recheck = leakage_recheck(dataset, featured, feature_inputs, RECHECK_SAMPLES, version)
        report.seconds["recheck"] = round(time.monotonic() - started, 3)

        samples = to_samples(split.filter(~F.col("_purged")), spec, version, as_of)
        staged = f"{staging_root(target, config.run_id)}/{ROOT}/{spec.name}/{version}"
        started = time.monotonic()
        fs.delete(staged)
        (
            samples.repartition(*PARTITIONS)
            .sortWithinPartitions(*PARTITIONS, "sample_id")
            .write.mode("overwrite")
            .partitionBy(*PARTITIONS)
            .parquet(staged)
        )
        for name in SPLITS:
            if fs.exists(f"{staged}/split={name}"):
                fs.rename(f"{staged}/split={name}", f"{staged}/{name}")
        report.seconds["write"] = round(time.monotonic() - started, 3)
    finally:
        for frame in (featured, candidates, *feature_inputs):
            frame.unpersist()

    started = time.monotonic()
    schema = samples.drop("split").schema
    staged_frame = read_version(spark, staged, schema)
    expected = total - without_entry - purged
    results, partition_rows = check_partitions(
        staged_frame, dataset, quality_checks(spec, expected), PARTITIONS
    )
    results.append(recheck)
    results.append(split_check(dataset, staged_frame, start, embargo))
    shown = ", ".join(inputs.mismatched[:3])
    results.append(
        CheckResult(dataset, "", "bronze_inputs_match_manifests", not inputs.mismatched,
                    f"{len(inputs.mismatched)} bronze files differ from their manifest's"
                    f" sha256{': ' + shown if shown else ''}", True)
    )  # fmt: skip
    warnings, rows, balance = balance_and_outliers(dataset, staged_frame, spec)
    results += warnings
    hashes = split_hashes(staged_frame)
    report.checks = [r.as_dict() for r in results]
    report.partitions = sorted(partition_rows)
    report.partition_rows = dict(sorted(partition_rows.items()))
    report.outputs[dataset] = sum(rows.values())
    report.files = len(staged_frame.inputFiles())
    report.seconds["checks"] = round(time.monotonic() - started, 3)

    document = {
        "dataset": dataset,
        "name": spec.name,
        "version": version,
        "built_at": datetime.now(UTC).isoformat(),
        "generated_at": as_of.isoformat(),
        "sample_rule": spec.sample_rule,
        "sample_id": f"uuid5({SAMPLE_NAMESPACE}, '<version>/<execution_id>')",
        "sample_time": "t = the execution's triggered_at (UTC); partitions: date of t",
        "features": [f.as_dict() for f in FEATURES],
        "labels": [asdict(LABELS[n]) for n in spec.labels],
        "thresholds": {"slippage_breach_pct": SLIPPAGE_BREACH_PCT},
        "split": {
            "method": "by trigger time; train before test, purged and embargoed",
            "test_start": start.isoformat() if start else None,
            "test_from": parameters["test_from"],
            "test_fraction": parameters["test_fraction"],
            "embargo_seconds": embargo,
            "purged": purged,
            "excluded_without_entry_fill": without_entry,
        },
        "rows": rows,
        "label_balance": balance,
        "content_hash": hashes,
        "inputs": describe_inputs(inputs, config.input_runs),
        "code_version": code,
        "parameters": parameters,
        "fingerprint": print_,
        "checks": [r.as_dict() for r in results],
        "schema": sample_schema(spec),
    }
    fs.write_text(f"{staged}/features.json", json.dumps(document, indent=2, default=str) + "\n")
    report.details.update({"rows": rows, "purged": purged, "content_hash": hashes})

    failed = failed_critical(results)
    if failed:
        names = ", ".join(f"{r.check} ({r.observed})" for r in failed)
        raise ChecksFailed(f"critical checks failed, nothing published ({staged}): {names}")
    started = time.monotonic()
    try:
        fs.rename(staged, live)
    except FileExistsError:
        raise Refused(f"{dataset} {version} was published meanwhile by another run") from None
    fs.delete(staging_root(target, config.run_id))
    report.published = True
    report.seconds["publish"] = round(time.monotonic() - started, 3)
    log.info("published %s %s: %s", dataset, version, rows)


def _stored_schema(spark: SparkSession, live: str) -> StructType:
    """Return the schema of a published version's rows (with ``date``), from its files."""
    for split in SPLITS:
        path = f"{live}/{split}"
        if LakeFS(spark).exists(path):
            return (
                spark.read.option("pathGlobFilter", "*.parquet")
                .option("basePath", path)
                .parquet(path)
                .schema
            )
    raise ChecksFailed(f"{live} holds no split")
