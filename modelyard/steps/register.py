from __future__ import annotations

import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec
from sklearn.pipeline import Pipeline

from modelyard.backends import alerts
from modelyard.backends.registry import (
    by_alias,
    promote,
    set_alias,
    stamp,
    version_for_run,
)
from modelyard.backends.tracking import file_lock, lineage_tags, lock_path
from modelyard.contract import EVALUATION, SPLITS, RegisterOutputs, RegisterParams
from modelyard.contract.config import CANARY, PipelineConfig, task_of
from modelyard.contract.records import (
    CHALLENGER,
    CHAMPION,
    EVALUATION_FILE,
    PROFILE_FILE,
    PROMOTE,
    REFERENCE_PROFILE,
    REJECT,
    SPLIT_FILE,
    Decision,
    Evaluation,
    SplitSummary,
    Tags,
    read_record,
    read_split_roles,
    read_splits,
)
from modelyard.core.errors import BadInputError
from modelyard.core.signals import deferred_signals
from modelyard.ml import model
from modelyard.ml.columns import role_tags

SERVING_PACKAGES = ("scikit-learn", "skops", "numpy", "pandas", "scipy")


def register(params: RegisterParams, work_dir: Path) -> RegisterOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    if params.model_name != config.model_name:
        raise BadInputError(
            f"--model-name {params.model_name!r} is not the config's model {config.model_name!r}: "
            "the promotion lock would guard another model"
        )
    evaluation = read_record(Evaluation, work_dir / EVALUATION / EVALUATION_FILE)
    split_info = read_record(SplitSummary, work_dir / SPLITS / SPLIT_FILE)
    run_id = evaluation.candidate_run_id
    client = mlflow.MlflowClient()
    parent = client.get_run(params.run_id)
    roles = read_split_roles(work_dir / SPLITS)
    tags = (
        lineage_tags()
        | {
            Tags.DATASET: config.dataset,
            Tags.DATASET_FINGERPRINT: split_info.fingerprint,
            Tags.CONFIG_HASH: parent.data.tags.get(Tags.CONFIG_HASH, ""),
            Tags.PIPELINE_RUN_ID: params.run_id,
            Tags.TASK: task_of(config),
            Tags.DECISION: evaluation.decision,
            Tags.REASONS: "; ".join(evaluation.reasons),
        }
        | {Tags.test_metric(k): f"{v:.4f}" for k, v in evaluation.metrics.items()}
        | (role_tags(roles) if roles else {})
    )
    # A stop signal waits until the new version has its aliases: never a version half-registered.
    with deferred_signals():
        registered = version_for_run(client, config.model_name, run_id)
        if registered is None:
            registered = log_and_register(config, run_id, work_dir, tags)
        else:  # a retried step: finish what the failed attempt started
            stamp(client, registered, tags)
        set_alias(client, config.model_name, CHALLENGER, registered.version)
        with file_lock(lock_path(config.model_name)):
            decision, note = decide(client, registered, evaluation, canary=config.promotion == CANARY)
            champion = by_alias(client, config.model_name, CHAMPION)
    if decision != evaluation.decision:  # the version and the parent run record what was done
        stamp(client, registered, {Tags.DECISION: decision, Tags.REASONS: note})
        client.set_tag(params.run_id, Tags.DECISION, decision)
    print(note, file=sys.stderr)
    if decision == PROMOTE:
        alerts.send(f"{config.model_name}: {note}")
    client.set_tag(params.run_id, Tags.REGISTERED_VERSION, str(registered.version))
    client.set_tag(params.run_id, Tags.NOTE, note)
    shipped = decision == PROMOTE and config.promotion == CANARY
    return RegisterOutputs(
        version=str(registered.version),
        champion_version=str(champion.version) if champion else "",
        decision=decision,
        note=note,
        deploy_version=str(registered.version) if shipped else "",
    )


def decide(
    client: mlflow.MlflowClient, registered: ModelVersion, evaluation: Evaluation, *, canary: bool = False
) -> tuple[Decision, str]:
    """Promote only over the champion evaluate compared against (a compare-and-set; the caller
    holds the model's lock): a champion that moved meanwhile was never compared with this model.
    canary: a passing version is left to the deploy step, which moves champion once it is promoted."""
    if evaluation.decision != PROMOTE:
        return REJECT, f"v{registered.version} rejected: " + "; ".join(evaluation.reasons)
    current = by_alias(client, registered.name, CHAMPION)
    now = str(current.version) if current else ""
    compared = evaluation.champion.version if evaluation.champion else ""
    if now == str(registered.version):  # a retried step: the failed attempt promoted it
        return PROMOTE, f"promoted v{registered.version} to {CHAMPION}"
    if now != compared:
        return REJECT, (
            f"the {CHAMPION} changed from {_named(compared)} to {_named(now)} while this run was evaluated; "
            f"not promoted: rerun to compare with {_named(now)}"
        )
    if canary:
        return PROMOTE, (
            f"v{registered.version} passed: it goes out as a canary (promotion: canary); "
            f"{CHAMPION} stays {_named(now)} until the canary is promoted"
        )
    previous = promote(client, registered)
    return PROMOTE, f"promoted v{registered.version} to {CHAMPION}" + (
        f" (previous champion v{previous})" if previous else ""
    )


def _named(version: str) -> str:
    return f"v{version}" if version else "none"


def log_and_register(
    config: PipelineConfig, run_id: str, work_dir: Path, tags: dict[str, str]
) -> ModelVersion:
    """Log the model, then create its version together with its tags: one call, one transaction, so
    no version ever exists without its lineage (a server dying in between leaves no version at all)."""
    pipeline = model.load_candidate(run_id)
    (train,) = read_splits(work_dir / SPLITS, "train")
    roles = read_split_roles(work_dir / SPLITS)
    features, _ = model.features_and_label(train, config.label, task_of(config), roles=roles)
    example = features.head(5)
    client = mlflow.MlflowClient()
    # The profile goes first: a registered version must never lack its reference data profile.
    folder = Path(REFERENCE_PROFILE).parent.as_posix()
    client.log_artifact(run_id, str(work_dir / SPLITS / PROFILE_FILE), folder)
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as code:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=serving_signature(pipeline, example),
            input_example=example,
            pip_requirements=pinned_requirements(),
            skops_trusted_types=model.trusted_types(pipeline),
            code_paths=model.served_code(Path(code)) if roles and roles.datetime else None,
        )
    return mlflow.register_model(info.model_uri, config.model_name, tags=tags)


def serving_signature(pipeline: Pipeline, example: pd.DataFrame) -> ModelSignature:
    """The model's input as raw rows: every feature required; integer and datetime features of any
    type. MLflow refuses a missing value (NaN) for `long` but int64 for `double`, and for `datetime`
    text that is no date or dates in two formats; `Any` lets all of them through to the Pipeline,
    which parses the dates and imputes what is missing."""
    loose = {c for c in example.columns if _loosely_typed(example[c])}
    inferred = infer_signature(example.astype({c: str for c in loose}), pipeline.predict(example))
    inputs: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType() if spec.name in loose else spec.type, spec.name) for spec in inferred.inputs.inputs
    ]
    return ModelSignature(Schema(inputs), inferred.outputs)


def _loosely_typed(column: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)


def pinned_requirements() -> list[str]:
    # Explicit pins: inferring requirements starts a subprocess that costs seconds per model.
    pins = [f"{name}=={version(name)}" for name in SERVING_PACKAGES]
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return [f"{dist}=={version(dist)}", *pins]
        except PackageNotFoundError:
            continue
    return pins
