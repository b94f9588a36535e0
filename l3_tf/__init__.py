"""L3-Net (Look, Listen and Learn) in TensorFlow 2 / Keras 3."""

from l3_tf.platform import cpu_features as _cpu_features

__version__ = "0.1.0"

# Before anything here loads TensorFlow: oneDNN's CPU kernels where
# TensorFlow would pick Eigen's (`cpu_features.prefer_onednn` says why; a
# TF_ENABLE_ONEDNN_OPTS the user set wins).
_cpu_features.prefer_onednn()
