#!/bin/sh
# Shrink the trainer virtualenv at build time (the image target is <= 580 MB: tests/test_images.py).
# Usage: slim-venv.sh VENV
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)

# Test suites, C headers, sources and type stubs are never used at run time.
find "$site" -depth -type d \( -name tests -o -name include \) -exec rm -rf {} +
find "$site" -type f \( -name '*.c' -o -name '*.cc' -o -name '*.h' -o -name '*.pyx' \
    -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' \) -delete

# Symbol tables and debug info of the wheels' shared libraries (what Debian's dh_strip drops):
# never read at run time, ~45 MB. Code and dynamic symbols stay, so every extension still loads.
# Not the libraries auditwheel vendored into *.libs: patchelf rewrote their layout, and strip
# then writes segments the loader rejects ("ELF load command address/offset not page-aligned").
find "$site" -path "$site/*.libs" -prune -o -type f -name '*.so*' -exec strip --strip-unneeded {} +

# pyarrow's Flight RPC and S3 filesystem (modelyard reads S3 with minio; pyarrow imports both only
# on demand) and its C++ test module: ~40 MB.
rm -f "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_python_flight.so* \
    "$site"/pyarrow/_flight.*.so "$site"/pyarrow/libarrow_s3.so* "$site"/pyarrow/_s3fs.*.so \
    "$site"/pyarrow/_pyarrow_cpp_tests.*.so

# Byte-code only for what a step or `modelyard serve` imports (all of it would be ~115 MB; the
# Dockerfile's pip writes none), compiled by importing it. The root filesystem is read-only at run
# time, so missing .pyc cost start time, not correctness.
find "$venv" -depth -type d -name __pycache__ -exec rm -rf {} +
"$venv/bin/python" - <<'PY'
import importlib, importlib.util

import matplotlib

matplotlib.use("Agg")
for name in [
    "modelyard.cli.main", "mlflow", "mlflow.sklearn", "mlflow.models", "matplotlib.pyplot",
    "pandas", "pyarrow.parquet", "pyarrow.dataset", "skops.io", "minio", "pydantic", "yaml",
    "sklearn.ensemble", "sklearn.linear_model", "sklearn.metrics", "sklearn.model_selection",
    "sklearn.pipeline", "sklearn.preprocessing",
    "mlflow.pyfunc.scoring_server", "uvicorn", "modelyard.serving.app", "modelyard.steps.deploy",
    "modelyard.steps.analyze",
]:
    if importlib.util.find_spec(name.split(".")[0]) and (
        "." not in name or importlib.util.find_spec(name)
    ):
        importlib.import_module(name)
PY
"$venv/bin/python" -m compileall -q "$site/modelyard"
