from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
from mlflow.models import infer_signature

from modelyard import alerts, model
from modelyard.config import PipelineConfig, task_of
from modelyard.contract import EVALUATION, SPLITS, RegisterOutputs, RegisterParams
from modelyard.errors import BadInputError
from modelyard.registry import (
    CHALLENGER,
    CHAMPION,
    PROFILE_PATH,
    by_alias,
    promote,
    set_alias,
    stamp,
    version_for_run,
)
from modelyard.steps.evaluate import PROMOTE, load_candidate
from modelyard.steps.split import read_splits
from modelyard.tracking import TAG, lineage_tags

SERVING_PACKAGES = ("scikit-learn", "skops", "numpy", "pandas", "scipy")


def register(params: RegisterParams, work_dir: Path) -> RegisterOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    if params.model_name != config.model_name:
        raise BadInputError(
            f"--model-name {params.model_name!r} is not the config's model {config.model_name!r}: "
            "the promotion lock would guard another model"
        )
    evaluation = json.loads((work_dir / EVALUATION / "evaluation.json").read_text())
    split_info = json.loads((work_dir / SPLITS / "split.json").read_text())
    run_id, decision = evaluation["candidate_run_id"], evaluation["decision"]
    client = mlflow.MlflowClient()
    parent = client.get_run(params.run_id)
    tags = (
        lineage_tags()
        | {
            f"{TAG}dataset": config.dataset,
            f"{TAG}dataset_fingerprint": split_info["fingerprint"],
            f"{TAG}config_hash": parent.data.tags.get(f"{TAG}config_hash", ""),
            f"{TAG}pipeline_run_id": params.run_id,
            f"{TAG}task": task_of(config),
            f"{TAG}decision": decision,
            f"{TAG}reasons": "; ".join(evaluation["reasons"]),
        }
        | {f"{TAG}test_{k}": f"{v:.4f}" for k, v in evaluation["metrics"].items()}
    )
    registered = version_for_run(client, config.model_name, run_id)
    if registered is None:
        registered = log_and_register(config, run_id, work_dir, tags)
    else:  # a retried step: finish what the failed attempt started
        stamp(client, registered, tags)
    set_alias(client, config.model_name, CHALLENGER, registered.version)
    if decision == PROMOTE:
        previous = promote(client, registered)
        note = f"promoted v{registered.version} to {CHAMPION}" + (
            f" (previous champion v{previous})" if previous else ""
        )
        alerts.send(f"{config.model_name}: {note}")
    else:
        note = f"v{registered.version} rejected: " + "; ".join(evaluation["reasons"])
    print(note, file=sys.stderr)
    champion = by_alias(client, config.model_name, CHAMPION)
    client.set_tag(params.run_id, f"{TAG}registered_version", str(registered.version))
    return RegisterOutputs(
        version=str(registered.version),
        champion_version=str(champion.version) if champion else "",
        decision=decision,
    )


def log_and_register(
    config: PipelineConfig, run_id: str, work_dir: Path, tags: dict[str, str]
) -> mlflow.entities.model_registry.ModelVersion:
    """Log the model, then create its version together with its tags: one call, one transaction, so
    no version ever exists without its lineage (a server dying in between leaves no version at all)."""
    pipeline = load_candidate(run_id)
    (train,) = read_splits(work_dir, "train")
    features, _ = model.features_and_label(train, config.label, task_of(config))
    example = features.head(5)
    client = mlflow.MlflowClient()
    # The profile goes first: a registered version must never lack its reference data profile.
    client.log_artifact(run_id, str(work_dir / SPLITS / "profile.json"), Path(PROFILE_PATH).parent.as_posix())
    with mlflow.start_run(run_id=run_id):
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict(example)),
            input_example=example,
            pip_requirements=pinned_requirements(),
            skops_trusted_types=model.trusted_types(pipeline),
        )
    return mlflow.register_model(info.model_uri, config.model_name, tags=tags)


def pinned_requirements() -> list[str]:
    # Explicit pins: inferring requirements starts a subprocess that costs seconds per model.
    pins = [f"{name}=={version(name)}" for name in SERVING_PACKAGES]
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return [f"{dist}=={version(dist)}", *pins]
        except PackageNotFoundError:
            continue
    return pins
