"""What a run says on stderr while it trains: a heartbeat per running candidate on long fits, the real
time of a cut beside its budget, and no library noise (GitPython, MLflow's database setup) without -v."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import MODELYARD, make_customers, modelyard

from modelyard.contract import PrepareParams, parse_params
from modelyard.runner.local import run_in_process
from modelyard.steps import train

BUDGET = 3  # seconds: the forest below takes far longer to grow whole
FOREST = f"""\
candidate_time_budget: {BUDGET}
search_space: {{random_forest: {{n_estimators: [2000]}}}}
"""
HEARTBEAT = re.compile(r"^train: (\S+) fitting, (\d+) of 2000 trees, (\d+) s elapsed$", re.MULTILINE)


def test_a_long_fit_says_how_far_it_has_come_and_when_it_was_cut(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(train, "HEARTBEAT_SECONDS", 0.5)
    # Rows enough that no machine grows the forest within the budget: on an idle one 3,000 rows grew
    # 2,000 trees in 3 s, so the rest was grown at once and nothing was cut.
    make_customers(12000).to_csv(tmp_path / "customers.csv", index=False)
    params = {"config": FOREST, "dataset": str(tmp_path / "customers.csv"), "label": "churn"}
    prepared = run_in_process("prepare", parse_params(PrepareParams, params).model_dump(), tmp_path)
    pipeline = {"config": prepared.config, "run_id": prepared.run_id}
    run_in_process("split", pipeline, tmp_path)
    (candidate,) = json.loads(prepared.candidates)
    capfd.readouterr()
    run_in_process("train", pipeline | {"candidate": json.dumps(candidate)}, tmp_path)
    stderr = capfd.readouterr().err

    cut = re.search(
        rf"^train: {re.escape(candidate['name'])} cut at (\d+) of 2000 trees after (\d+\.\d) s "
        rf"\(candidate_time_budget {BUDGET} s\)$",
        stderr,
        re.MULTILINE,
    )
    assert cut, stderr
    fitting = float(cut.group(2))
    assert BUDGET * 0.5 <= fitting <= BUDGET + 2  # the time it took, not the budget
    beats = HEARTBEAT.findall(stderr)
    # One every 0.5 s while the forest grew; a loaded machine (CI builds Go beside the tests) may
    # delay the heartbeat thread, so at least half of them.
    assert len(beats) >= fitting / 0.5 / 2, stderr
    assert {name for name, _, _ in beats} == {candidate["name"]}
    trees = [int(grown) for _, grown, _ in beats]
    assert trees == sorted(trees)
    assert int(cut.group(1)) >= trees[-1]
    assert int(beats[-1][2]) >= int(fitting) - 1


def test_a_run_without_git_prints_no_library_noise(tmp_path: Path) -> None:
    """As in a trainer container: no git binary. GitPython's warning and MLflow's INFO lines about
    its database are not the user's business unless they ask with -v."""
    make_customers(300).to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "one.yaml").write_text("search_space: {logistic_regression: {C: [1.0]}}\n")
    without_git = {
        "PATH": str(Path(MODELYARD[0]).parent),  # the venv's bin: no git there
        "GIT_PYTHON_GIT_EXECUTABLE": str(tmp_path / "no-git"),
    }
    args = ["--config", "one.yaml", "--dataset", "customers.csv", "--label", "churn", "--model-name", "quiet"]
    done = modelyard("run", *args, cwd=tmp_path, env=without_git)
    assert done.returncode == 0, done.stderr
    assert "train: finished 1/1" in done.stderr  # the run's own lines are there
    assert "All git commands will error" not in done.stderr
    assert "INFO  [alembic" not in done.stderr
    assert not re.search(r"\bINFO\b", done.stderr), done.stderr
