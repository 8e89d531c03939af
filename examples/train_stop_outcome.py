"""Train a classifier on gold.training_sets.stop_outcome and compare it with the baseline.

    python examples/train_stop_outcome.py [--lake var/lake] [--version v1.0.0]

Loads the version's train and test splits with pyarrow, fits scikit-learn's
gradient-boosted trees on the features (nulls stay missing values, which the model
handles; a feature null throughout train is left out), and prints the ROC AUC on test
next to the majority-class baseline's (a constant score: 0.5). Needs only pyarrow and
scikit-learn (requirements-dev.txt), not Spark.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

TARGET = "execution_success"


@dataclass(frozen=True)
class Evaluation:
    """How the model and the majority-class baseline score on the test split."""

    version: str
    train_rows: int
    test_rows: int
    model_auc: float
    baseline_auc: float
    baseline_accuracy: float


def load_split(version_dir: Path, split: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (features, labels) of one split: features as floats, nulls as NaN."""
    table = ds.dataset(version_dir / split, format="parquet", partitioning="hive").to_table(
        columns=["features", "label"]
    )
    features = table.column("features").combine_chunks()
    columns = [
        features.field(name).cast("float64").to_numpy(zero_copy_only=False) for name in names
    ]
    x = np.column_stack(columns).astype("float64")
    labels = table.column("label").combine_chunks().field(TARGET)
    return x, labels.to_numpy(zero_copy_only=False).astype(bool)


def evaluate(version_dir: Path, seed: int = 0) -> Evaluation:
    """Fit on train, score on test; return both scores."""
    document = json.loads((version_dir / "features.json").read_text())
    names = [feature["name"] for feature in document["features"]]
    x_train, y_train = load_split(version_dir, "train", names)
    x_test, y_test = load_split(version_dir, "test", names)
    # A feature with no values in train (no klines exported yet) cannot be learnt from.
    known = ~np.all(np.isnan(x_train), axis=0)
    x_train, x_test = x_train[:, known], x_test[:, known]
    # Failures are rare (about one sample in ten): shallow trees with large leaves learn
    # the market's effect; deep ones learn the noise of a few hundred failures.
    model = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.05, max_depth=3, min_samples_leaf=50, random_state=seed
    )
    model.fit(x_train, y_train)
    model_auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    majority = y_train.mean() >= 0.5
    constant = np.full(len(y_test), float(majority))
    return Evaluation(
        version=document["version"],
        train_rows=len(y_train),
        test_rows=len(y_test),
        model_auc=float(model_auc),
        baseline_auc=float(roc_auc_score(y_test, constant)),
        baseline_accuracy=float((y_test == majority).mean()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", default="var/lake", help="lake directory (default var/lake)")
    parser.add_argument("--version", default="v1.0.0", help="training-set version")
    args = parser.parse_args(argv)
    version_dir = Path(args.lake) / "gold/training_sets/stop_outcome" / args.version
    if not (version_dir / "features.json").is_file():
        print(f"error: no training set at {version_dir}", file=sys.stderr)
        return 2
    result = evaluate(version_dir)
    print(f"stop_outcome {result.version}: {result.train_rows} train, {result.test_rows} test")
    print(f"ROC AUC on test: gradient boosting {result.model_auc:.3f}"
          f"  vs  majority-class baseline {result.baseline_auc:.3f}"
          f" (baseline accuracy {result.baseline_accuracy:.1%})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
