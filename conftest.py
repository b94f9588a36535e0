"""Root pytest set-up for tests/ and data_prep/: quiet TensorFlow logs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
