#!/bin/sh
# Shrink the trainer virtualenv at build time (the image target is <= 500 MB).
# Usage: slim-venv.sh VENV
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)

# Test suites, C headers, sources and type stubs are never used at run time.
find "$site" -depth -type d \( -name tests -o -name include \) -exec rm -rf {} +
find "$site" -type f \( -name '*.c' -o -name '*.cc' -o -name '*.h' -o -name '*.pyx' \
    -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' \) -delete

# pyarrow parts modelyard never loads (object stores go through the minio client):
# Flight RPC, the S3/GCS/Azure/HDFS filesystems, C++ test helpers, and the duplicate
# copies of libarrow_python* that pip writes instead of symlinks (the loader uses *.so.NNNN).
cd "$site/pyarrow"
rm -f ./*flight* _s3fs.* libarrow_s3.* _gcsfs.* _azurefs.* _hdfs.* _pyarrow_cpp_tests.* \
    libarrow_python*.so libarrow_python*.so.*.*.*
cd - >/dev/null

# Byte-code only for what a step imports (pip compiled everything: ~115 MB). The root
# filesystem is read-only at run time, so missing .pyc cost start time, not correctness.
find "$venv" -depth -type d -name __pycache__ -exec rm -rf {} +
"$venv/bin/python" - <<'PY'
import importlib, importlib.util

import matplotlib

matplotlib.use("Agg")
for name in [
    "modelyard.cli", "mlflow", "mlflow.sklearn", "mlflow.models", "matplotlib.pyplot",
    "pandas", "pyarrow.parquet", "skops.io", "minio", "pydantic", "yaml",
    "sklearn.ensemble", "sklearn.linear_model", "sklearn.metrics", "sklearn.model_selection",
    "sklearn.pipeline", "sklearn.preprocessing",
]:
    if importlib.util.find_spec(name.split(".")[0]) and (
        "." not in name or importlib.util.find_spec(name)
    ):
        importlib.import_module(name)
PY
"$venv/bin/python" -m compileall -q "$site/modelyard"
