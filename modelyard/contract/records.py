"""What flows between steps besides parameters: outcome words, file and tag names, typed records.

A record is written and read only through `write_record` / `read_record` (files) or `dump` /
`load` (JSON in a string output), so every step sees the same fields with the same types.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field
from pydantic.dataclasses import dataclass

from modelyard.contract.config import describe_errors
from modelyard.contract.tasks import Task
from modelyard.core.errors import BadInputError

if TYPE_CHECKING:
    import pandas as pd

# Outcome words: one vocabulary for the steps, the CLI, the Argo `when` expressions and the alerts.
Decision = Literal["promote", "reject"]
PROMOTE: Final[Decision] = "promote"
REJECT: Final[Decision] = "reject"
Verdict = Literal["ok", "warn", "retrain"]  # by severity; also the numeric `verdict` metric (0, 1, 2)
OK: Final[Verdict] = "ok"
WARN: Final[Verdict] = "warn"
RETRAIN: Final[Verdict] = "retrain"
VERDICTS: Final[tuple[Verdict, ...]] = (OK, WARN, RETRAIN)
ValidationStatus = Literal["pass", "warn", "fail"]
# Argo's {{workflow.status}}, and the local runner's; "Stopped": the runner was stopped by a signal.
RunStatus = Literal["Succeeded", "Failed", "Error", "Stopped"]
Level = Literal["ok", "warn", "alert"]  # one column's or one metric's drift or decay
Severity = Literal["error", "warning"]
Method = Literal["ks", "chi2", "wasserstein", "psi"]
# How `modelyard deploy` ended: the version serves all traffic, was sent back, is still under way
# (no --wait), or already served.
RolloutOutcome = Literal["promoted", "aborted", "started", "unchanged"]
# The registry aliases modelyard moves: register points challenger at each new version, promote and
# rollback move champion (`modelyard.backends.registry`); `modelyard serve` serves champion by default.
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"

# Files inside the artifacts (contract.SPLITS, VALIDATION, EVALUATION).
PARTS: Final = ("train", "validation", "test")
PROFILE_FILE: Final = "profile.json"
SPLIT_FILE: Final = "split.json"
ROLES_FILE: Final = "roles.json"
EVALUATION_FILE: Final = "evaluation.json"
REPORT_FILE: Final = "report.json"
REPORT_TEXT: Final = "report.txt"
MODEL_FILE: Final = "model.skops"
# MLflow run artifacts other steps read back.
CANDIDATE_MODEL: Final = f"candidate/{MODEL_FILE}"  # a candidate run's fitted pipeline
REFERENCE_PROFILE: Final = f"reference/{PROFILE_FILE}"  # a registered version's training-data profile
CONFIG_FILE: Final = "config.json"  # the parent run's resolved config
MONITORING: Final = "monitoring"  # a monitoring run's report folder


def part_file(part: str) -> str:
    return f"{part}.parquet"


def read_splits(splits: Path, *parts: str) -> list[pd.DataFrame]:
    """The split step's Parquet files (in the SPLITS artifact directory), as later steps read them."""
    import pandas as pd

    try:
        return [pd.read_parquet(splits / part_file(part)) for part in parts]
    except FileNotFoundError as exc:
        raise BadInputError(f"{exc.filename} is missing: pass the split step's artifact") from exc


class Tags:
    """MLflow tag names modelyard writes on runs and model versions (the ones other steps read)."""

    PREFIX: Final = "modelyard."
    STEP: Final = PREFIX + "step"
    CANDIDATE: Final = PREFIX + "candidate"
    OVERFIT: Final = PREFIX + "overfit"
    CUT: Final = PREFIX + "cut"  # "N of M": trees grown of those asked for, at the time budget
    DATASET: Final = PREFIX + "dataset"
    DATASET_FINGERPRINT: Final = PREFIX + "dataset_fingerprint"
    CONFIG_HASH: Final = PREFIX + "config_hash"
    MODEL_NAME: Final = PREFIX + "model_name"
    TASK: Final = PREFIX + "task"
    TASK_REASON: Final = PREFIX + "task_reason"
    VALIDATION: Final = PREFIX + "validation"
    DECISION: Final = PREFIX + "decision"
    REASONS: Final = PREFIX + "reasons"
    BEST_CANDIDATE: Final = PREFIX + "best_candidate"
    BEST_CANDIDATE_RUN_ID: Final = PREFIX + "best_candidate_run_id"
    PIPELINE_RUN_ID: Final = PREFIX + "pipeline_run_id"
    REGISTERED_VERSION: Final = PREFIX + "registered_version"
    NOTE: Final = PREFIX + "note"  # what register did and why, in words
    FAILURE: Final = PREFIX + "failure"
    STATUS: Final = PREFIX + "status"
    CODE_VERSION: Final = PREFIX + "code_version"
    IMAGE: Final = PREFIX + "image"
    WORKFLOW_NAME: Final = PREFIX + "workflow_name"
    WORKFLOW_UID: Final = PREFIX + "workflow_uid"
    PREVIOUS_CHAMPION: Final = PREFIX + "previous_champion"
    PROMOTED_AT: Final = PREFIX + "promoted_at"
    CHAMPION_VERSION: Final = PREFIX + "champion_version"
    VERDICT: Final = PREFIX + "verdict"
    ROLLED_BACK_AT: Final = PREFIX + "rolled_back_at"
    ROLLED_BACK_BY: Final = PREFIX + "rolled_back_by"
    ROLLBACK_REASON: Final = PREFIX + "rollback_reason"
    RESTORED_AT: Final = PREFIX + "restored_at"
    RESTORED_BY: Final = PREFIX + "restored_by"
    RESTORE_REASON: Final = PREFIX + "restore_reason"
    ROLLOUT: Final = PREFIX + "rollout"  # how `modelyard deploy` ended: a RolloutOutcome
    ROLLOUT_REASONS: Final = PREFIX + "rollout_reasons"
    ROLLOUT_AT: Final = PREFIX + "rollout_at"
    ANALYSIS: Final = PREFIX + "canary_analysis"  # pass or fail, the last analysis of the version as a canary
    ANALYSIS_DETAILS: Final = PREFIX + "canary_analysis_details"
    FEATURES: Final = PREFIX + "features"
    DATETIME_COLUMNS: Final = PREFIX + "datetime_columns"
    EXCLUDED_COLUMNS: Final = PREFIX + "excluded_columns"

    @staticmethod
    def test_metric(metric: str) -> str:
        """A model version's recorded test score, which monitoring compares a batch's score with."""
        return Tags.PREFIX + part_metric("test", metric)


# A candidate run's train minus validation score (`tasks.worse_by`); the parent run gets the winner's.
GAP_METRIC: Final = "train_val_gap"


def part_metric(part: str, metric: str) -> str:
    """A score on one part of the split, as runs log it: train_f1_macro, val_f1_macro, test_f1_macro."""
    return f"{'val' if part == 'validation' else part}_{metric}"


def drift_metric(column: str) -> str:
    """A column's drift size, as validate and monitor log it (before MLflow's key cleaning)."""
    return f"drift_{column}"


def rows_metric(part: str) -> str:
    """The split run's metric of a part's size; monitoring reads `test_rows` back."""
    return f"{part}_rows"


class Record(BaseModel):
    # Readers ignore fields they do not know: a profile written by a newer modelyard still reads.
    model_config = ConfigDict(extra="ignore")


class Candidate(Record):
    """One point of the search space: what a train instance fits."""

    name: str
    estimator: str
    params: dict[str, Any]


class CandidateResult(Record):
    """What a train instance reports to select."""

    name: str
    run_id: str
    score: float
    noise: float = 0.0  # the validation score's standard error
    gap: float
    overfit: bool


# A test split smaller than this (or, classifying, with fewer rows of some class) picks a champion
# on too little evidence to trust: the split step and the run's summary say so.
SMALL_TEST_ROWS: Final = 30
SMALL_TEST_CLASS_ROWS: Final = 5


class SplitSummary(Record):
    dataset: str
    fingerprint: str
    rows: int
    stratified: bool
    train_rows: int
    validation_rows: int
    test_rows: int
    small_test: str | None = None  # why the test split is too small to trust (SMALL_TEST_ROWS ...)


class NumericProfile(Record):
    kind: Literal["numeric"] = "numeric"
    dtype: str
    null_fraction: float
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    quantiles: dict[str, float]
    bins: list[float]  # decile edges
    bin_fractions: list[float]
    sketch: list[float] = []  # quantiles at 0, 1/500, ..., 1; empty in profiles before the sketch


class CategoricalProfile(Record):
    kind: Literal["categorical"] = "categorical"
    dtype: str
    null_fraction: float
    categories: dict[str, float]  # share of each category among the non-missing values


class DatetimeProfile(Record):
    """A date column: its range, not its values (every new batch brings later dates)."""

    kind: Literal["datetime"] = "datetime"
    dtype: str
    null_fraction: float  # missing or unparseable
    min: str | None  # ISO 8601
    max: str | None


ColumnProfile = Annotated[NumericProfile | CategoricalProfile | DatetimeProfile, Field(discriminator="kind")]


class ColumnRoles(Record):
    """What each column is to the model: the split step resolves it (`modelyard.ml.columns`), the later
    steps read it from the splits artifact (`read_split_roles`)."""

    features: list[str]  # in the data's order; the model sees only these
    numeric: list[str]
    categorical: list[str]
    datetime: list[str] = []  # turned into calendar and elapsed-time features (`modelyard.dates`)
    excluded: dict[str, str] = {}  # column -> why the model does not see it


def read_split_roles(splits: Path) -> ColumnRoles | None:
    """The column roles the split step resolved; None for a splits artifact written before them."""
    path = splits / ROLES_FILE
    return read_record(ColumnRoles, path) if path.exists() else None


class DataProfile(Record):
    """What the training data looked like; stored with each model version, compared with new data."""

    rows: int
    label: str
    task: Task = "classification"
    columns: dict[str, ColumnProfile]
    labels: dict[str, int] | None = None  # classification: rows per class
    target: ColumnProfile | None = None  # regression: the label's distribution


@dataclass(frozen=True)
class Finding:
    """One broken rule of data validation (a dataclass: the checks build many, positionally)."""

    rule: str
    severity: Severity
    message: str
    column: str = ""


class ColumnDrift(Record):
    """One column of new data against its reference profile (`modelyard.quality.drift`)."""

    column: str
    kind: str
    rows: int  # values compared (non-missing)
    effective_rows: float = 0.0  # n·m/(n+m): what the test's power depends on
    method: Method | None = None  # None: not judged (see note)
    size: float | None = None  # drift size beyond noise: Wasserstein in sd (numeric), PSI (categorical)
    noise: float = 0.0  # the expected sampling noise taken off the raw size
    p_value: float | None = None
    alpha: float | None = None  # the p-value a detection needs (tests only)
    level: Level = "ok"
    note: str = ""
    bins: list[str] = []  # for the picture: reference vs current shares
    expected: list[float] = []
    actual: list[float] = []

    def describe(self) -> str:
        """The reason in words, e.g. "ks p=0.0001 < 0.0025, drift 0.48 sd"."""
        unit = " sd" if self.kind == "numeric" else " PSI"
        size = f"drift {self.size:.3f}{unit}" if self.size is not None else "not judged"
        if self.p_value is not None:
            sign = "<" if self.p_value < (self.alpha or 0) else ">="
            return f"{self.method} p={self.p_value:.2g} {sign} {self.alpha:.2g}, {size}"
        return f"{self.method}: {size}" if self.method else self.note


class ValidationReport(Record):
    status: ValidationStatus
    reference: str  # what the data was compared with
    findings: list[Finding]
    drift: list[ColumnDrift]


class Gate(Record):
    name: str
    passed: bool
    detail: str


class ChampionScore(Record):
    version: str
    metrics: dict[str, float] | None  # None: it could not score the test set (see error)
    error: str = ""


class Evaluation(Record):
    """The evaluate step's verdict on the challenger, which register acts on."""

    candidate_run_id: str
    candidate: str = ""  # the winner's name
    overfit: bool = False  # the winner's train-validation gap exceeded overfit_gap
    gap: float | None = None  # that gap (None: not recorded on the candidate run)
    metrics: dict[str, float]
    champion: ChampionScore | None
    gates: list[Gate]
    decision: Decision
    reasons: list[str]


class FeatureDrift(Record):
    drift: ColumnDrift
    level: Level = "ok"
    reasons: list[str] = []
    null_reference: float = 0.0
    null_current: float = 0.0
    null_noise: float = 0.0  # the change in the missing share that sampling alone may cause
    unseen_share: float = 0.0
    unseen_examples: list[str] = []

    @property
    def column(self) -> str:
        return self.drift.column

    @property
    def kind(self) -> str:
        return self.drift.kind

    @computed_field  # type: ignore[prop-decorator]
    @property
    def null_change(self) -> float:
        return self.null_current - self.null_reference


class MetricDecay(Record):
    metric: str
    recorded: float  # the champion's test score when it was registered
    current: float  # its score on the labelled rows of the batch
    drop: float  # how much worse (`modelyard.contract.tasks.worse_by`: a share for RMSE and MAE)
    noise: float  # two standard errors of the difference, in the units of `drop`
    level: Level


class MonitorReport(Record):
    """A monitoring check of one batch: per-feature drift, the champion's decay, the verdict."""

    rows: int
    features: list[FeatureDrift]
    decay: list[MetricDecay]
    decay_note: str
    verdict: Verdict = "ok"
    reasons: list[str] = []
    power: str = ""  # what the batch is too small to see, if anything

    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.level != "ok"]


R = TypeVar("R", bound=BaseModel)


def write_record(path: Path, record: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record.model_dump_json(indent=1))


def read_record(kind: type[R], path: Path) -> R:
    """A record file another step wrote; a missing or malformed one is the caller's input error."""
    try:
        return kind.model_validate_json(path.read_text())
    except FileNotFoundError as exc:
        raise BadInputError(
            f"{path} is missing: pass the artifact the step before this one produced"
        ) from exc
    except ValidationError as exc:
        raise BadInputError(f"{path} is not a valid {kind.__name__}: {describe_errors(exc)}") from exc


def dump(record: BaseModel) -> str:
    return record.model_dump_json()


def load(kind: type[R], text: str, what: str) -> R:
    """A record passed as a JSON string parameter (e.g. a candidate, a train result)."""
    try:
        return kind.model_validate_json(text)
    except ValidationError as exc:
        raise BadInputError(f"{what} is not a valid {kind.__name__}: {describe_errors(exc)}") from exc
