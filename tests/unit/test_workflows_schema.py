"""Every emitted Argo manifest validates against Argo's own JSON schema (of the pinned release,
from its Go module), made strict."""

from __future__ import annotations

import pytest
import yaml
from argo_tools import argo_validator

from workflows.compile import MANIFEST_DIR, MANIFESTS


@pytest.mark.parametrize("filename", sorted(MANIFESTS))
def test_manifest_is_valid_against_the_strict_argo_schema(filename: str) -> None:
    doc = yaml.safe_load((MANIFEST_DIR / filename).read_text())
    errors = sorted(argo_validator(doc["kind"]).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
