"""Root pytest set-up for tests/ and data_prep/: quiet TensorFlow logs, and
the CPU kernels the binaries use (oneDNN; `TF_ENABLE_ONEDNN_OPTS=0` selects
Eigen's)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before any test module loads TensorFlow (`cpu_features.prefer_onednn`).
import l3_tf  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position
