from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Final

import mlflow
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from modelyard.backends.tracking import child_run
from modelyard.contract import SPLITS, PipelineStepParams, SplitOutputs, StepName
from modelyard.contract.config import PipelineConfig, task_of
from modelyard.contract.records import (
    PARTS,
    PROFILE_FILE,
    ROLES_FILE,
    SMALL_TEST_CLASS_ROWS,
    SMALL_TEST_ROWS,
    SPLIT_FILE,
    SplitSummary,
    Tags,
    part_file,
    rows_metric,
    write_record,
)
from modelyard.contract.tasks import Task
from modelyard.core.errors import BadInputError
from modelyard.ml.columns import describe_roles, is_numeric, resolve_roles, role_tags
from modelyard.ml.datasets import load_dataset
from modelyard.quality.checks import require_label_values
from modelyard.quality.profile import profile_frame

log = logging.getLogger(__name__)


def split(params: PipelineStepParams, work_dir: Path) -> SplitOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    frame = load_dataset(config.dataset)
    if config.label not in frame.columns:
        raise BadInputError(
            f"label column {config.label!r} not in dataset {config.dataset} (columns: {', '.join(map(str, frame.columns))})"
        )
    require_label_values(frame[config.label], config.label, config.dataset)
    frame = canonical(frame)
    roles = resolve_roles(frame, config.label, config.columns)
    print(f"columns: {describe_roles(roles)}", file=sys.stderr)
    digest = fingerprint(frame)
    parts, stratified = split_frame(frame, config)
    out = work_dir / SPLITS
    out.mkdir(parents=True, exist_ok=True)
    for name, part in zip(PARTS, parts, strict=True):
        part.to_parquet(out / part_file(name), index=False)
    profile = profile_frame(frame, config.label, task_of(config), roles=roles)
    sizes = {rows_metric(name): len(part) for name, part in zip(PARTS, parts, strict=True)}
    small_test = small_test_warning(parts[-1][config.label], frame[config.label], task_of(config))
    if small_test:
        log.warning(small_test)
    summary = SplitSummary(
        dataset=config.dataset,
        fingerprint=digest,
        rows=len(frame),
        stratified=stratified,
        small_test=small_test,
        **sizes,
    )
    write_record(out / PROFILE_FILE, profile)
    write_record(out / SPLIT_FILE, summary)
    write_record(out / ROLES_FILE, roles)
    with child_run(params.run_id, StepName.SPLIT, {Tags.DATASET_FINGERPRINT: digest}):
        mlflow.log_params({"dataset": config.dataset, "fingerprint": digest, "stratified": stratified})
        mlflow.log_metrics({k: float(v) for k, v in ({"rows": len(frame)} | sizes).items()})
        client = mlflow.MlflowClient()
        for key, value in ({Tags.DATASET_FINGERPRINT: digest} | role_tags(roles)).items():
            client.set_tag(params.run_id, key, value)
        mlflow.log_artifact(str(out / PROFILE_FILE))
        mlflow.log_artifact(str(out / ROLES_FILE))
    return SplitOutputs(fingerprint=digest, rows=len(frame))


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a content-defined order, so the split depends on the data and the seed only."""
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    order = np.argsort(_row_hashes(frame), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[sorted(frame.columns)], index=False).to_numpy()


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the column names, dtypes and the sorted row hashes: same data, same id."""
    schema = json.dumps({c: str(frame[c].dtype) for c in sorted(frame.columns)}, sort_keys=True)
    digest = hashlib.sha256(schema.encode())
    digest.update(np.sort(_row_hashes(frame)).tobytes())
    return digest.hexdigest()


def small_test_warning(test_labels: pd.Series, labels: pd.Series, task: Task) -> str | None:
    """Why the test split is too small to pick a champion by with confidence, or None."""
    problems = []
    if len(test_labels) < SMALL_TEST_ROWS:
        problems.append(f"{len(test_labels)} rows (fewer than {SMALL_TEST_ROWS})")
    if task == "classification":
        counts = test_labels.value_counts().reindex(labels.dropna().unique(), fill_value=0)
        few = sorted(
            (str(value), int(count)) for value, count in counts.items() if count < SMALL_TEST_CLASS_ROWS
        )
        if few:
            shown = ", ".join(f"{value!r}: {count}" for value, count in few[:5])
            more = f" and {len(few) - 5} more" if len(few) > 5 else ""
            problems.append(f"fewer than {SMALL_TEST_CLASS_ROWS} rows of class {shown}{more}")
    if not problems:
        return None
    return (
        f"small test split: {'; '.join(problems)}; the test metrics, and the decision made on them, "
        "rest on little evidence"
    )


STRATA: Final = 10  # quantile bins of a regression label that the split keeps in proportion


def strata(labels: pd.Series, task: Task) -> pd.Series | None:
    """What the split stratifies on: the classes, or quantile bins of a numeric label (None: not
    numeric, which the validate step reports)."""
    if task == "classification":
        return labels
    if not is_numeric(labels):
        return None
    return pd.qcut(labels, q=min(STRATA, max(labels.nunique(), 1)), labels=False, duplicates="drop")


def split_frame(frame: pd.DataFrame, config: PipelineConfig) -> tuple[list[pd.DataFrame], bool]:
    fractions = config.fractions
    train, test_of_rest = fractions.train, fractions.test / (1 - fractions.train)
    labels = strata(frame[config.label], task_of(config))
    if labels is None:
        return _split(frame, train, test_of_rest, config.seed, None), False
    try:
        return _split(frame, train, test_of_rest, config.seed, labels), True
    except ValueError as exc:
        counts = labels.value_counts()
        log.warning(
            "WARNING: cannot stratify (%s); the smallest stratum %r has %d rows. Splitting at random instead.",
            exc,
            counts.idxmin(),
            counts.min(),
        )
        return _split(frame, train, test_of_rest, config.seed, None), False


def _split(
    frame: pd.DataFrame, train: float, test_of_rest: float, seed: int, labels: pd.Series | None
) -> list[pd.DataFrame]:
    train_part, rest = train_test_split(frame, train_size=train, random_state=seed, stratify=labels)
    rest_labels = None if labels is None else labels.loc[rest.index]
    validation, test = train_test_split(rest, test_size=test_of_rest, random_state=seed, stratify=rest_labels)
    return [train_part, validation, test]
