"""The table `modelyard run` ends with: metrics, gates, the registered version, aliases, where to look."""

from __future__ import annotations

import json

from mlflow import MlflowClient

from modelyard.contract import EVALUATION
from modelyard.registry import CHALLENGER, CHAMPION, by_alias
from modelyard.runner.local import PipelineRun


def summarize(run: PipelineRun, model_name: str, tracking_uri: str) -> str:
    evaluation = json.loads((run.work_dir / EVALUATION / "evaluation.json").read_text())
    registered = run.outputs["register"]
    client = MlflowClient()
    aliases = {a: by_alias(client, model_name, a) for a in (CHAMPION, CHALLENGER)}
    champion = evaluation["champion"]
    rows = [("decision", registered.decision.upper()), ("registered", f"{model_name} v{registered.version}")]
    rows += [(f"@{a}", f"v{v.version}" if v else "-") for a, v in aliases.items()]
    for metric, value in evaluation["metrics"].items():
        before = champion["metrics"][metric] if champion and champion.get("metrics") else None
        rows.append(
            (
                f"test {metric}",
                f"{value:.4f}"
                + (f"  (champion v{champion['version']}: {before:.4f})" if before is not None else ""),
            )
        )
    rows += [
        ("gate " + g["name"], ("pass  " if g["passed"] else "FAIL  ") + g["detail"])
        for g in evaluation["gates"]
    ]
    rows += [("time " + name, f"{seconds:.1f}s") for name, seconds in run.timings.items()]
    rows.append(("MLflow run", run.outputs["prepare"].run_url or run.run_id))
    if tracking_uri.startswith("sqlite:///"):
        rows.append(("look at it", f"mlflow ui --backend-store-uri {tracking_uri}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
