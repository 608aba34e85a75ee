"""The records steps hand each other: one shape, read and written in one place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.datasets import load_wine

from modelyard.contract.records import (
    CandidateResult,
    DataProfile,
    Evaluation,
    NumericProfile,
    load,
    read_record,
    write_record,
)
from modelyard.core.errors import BadInputError
from modelyard.quality.profile import profile_frame


def test_a_profile_survives_its_file_with_every_column_typed(tmp_path: Path) -> None:
    frame = load_wine(as_frame=True).frame
    profile = profile_frame(frame, "target", "classification")
    write_record(tmp_path / "profile.json", profile)
    again = read_record(DataProfile, tmp_path / "profile.json")
    assert again == profile
    alcohol = again.columns["alcohol"]
    assert isinstance(alcohol, NumericProfile) and len(alcohol.sketch) == 501
    assert again.labels == {"0": 59, "1": 71, "2": 48}


def test_a_profile_from_before_the_sketch_still_reads_and_unknown_keys_are_ignored(tmp_path: Path) -> None:
    old = {
        "rows": 3,
        "label": "y",
        "columns": {
            "x": {"kind": "numeric", "dtype": "float64", "null_fraction": 0.0, "min": 1, "max": 3,
                  "mean": 2, "std": 1, "quantiles": {}, "bins": [2.0], "bin_fractions": [0.5, 0.5]},
        },
        "written_by": "a newer modelyard",
    }  # fmt: skip
    (tmp_path / "profile.json").write_text(json.dumps(old))
    profile = read_record(DataProfile, tmp_path / "profile.json")
    assert profile.task == "classification" and profile.columns["x"].kind == "numeric"
    assert isinstance(profile.columns["x"], NumericProfile) and profile.columns["x"].sketch == []


def test_a_missing_or_malformed_record_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"evaluation.json is missing: pass the artifact"):
        read_record(Evaluation, tmp_path / "evaluation.json")
    (tmp_path / "evaluation.json").write_text('{"decision": "maybe"}')
    with pytest.raises(BadInputError, match=r"evaluation.json is not a valid Evaluation: .*decision"):
        read_record(Evaluation, tmp_path / "evaluation.json")


def test_a_candidate_result_passed_as_text_is_checked() -> None:
    good = CandidateResult(name="ridge[alpha=1]", run_id="0" * 32, score=0.5, gap=0.01, overfit=False)
    assert load(CandidateResult, good.model_dump_json(), "--results") == good
    with pytest.raises(BadInputError, match=r"--results is not a valid CandidateResult: .*score"):
        load(CandidateResult, '{"name": "x", "run_id": "y", "gap": 0, "overfit": false}', "--results")
