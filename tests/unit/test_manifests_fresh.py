"""The committed YAML is what the Hera source generates now (`make manifests` fixes a failure)."""

from __future__ import annotations

from workflows.compile import DEFAULT_DIRS, stale


def test_committed_manifests_match_the_hera_source() -> None:
    out_of_date = stale(DEFAULT_DIRS)
    assert not out_of_date, f"out of date: {[str(p) for p in out_of_date]}; run `make manifests` and commit"


def test_a_param_added_to_a_step_model_reaches_its_template() -> None:
    """A field added to a step's params model becomes an input and a flag, with no other edit."""
    from dataclasses import replace

    from pydantic import Field, create_model

    from modelyard.contract import STEPS, PipelineStepParams
    from workflows.common import step_template

    extended = create_model("Extended", __base__=PipelineStepParams, new_knob=(str, Field("x")))
    template = step_template(replace(STEPS["split"], params=extended))
    assert template.args[-2:] == ["--new-knob", "{{inputs.parameters.new-knob}}"]
    assert "new-knob" in {p.name for p in template.inputs}
