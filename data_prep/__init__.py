"""Dataset builders: videos and audio benchmarks to TFRecords through TFDS."""
