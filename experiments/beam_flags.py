"""The flags of the Beam pipeline, shared by `l3-embed` and `l3-search index`
(binaries only; the pipeline is `l3_tf/serving/embed_beam.py`)."""

from absl import flags

RUNNER = flags.DEFINE_string(
    "runner", None, "run the embedding as an Apache Beam pipeline on this "
    "runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner); "
    "default: in this process")
BEAM_OPTIONS = flags.DEFINE_string(
    "beam_options", "", "with --runner: more Beam pipeline options, as "
    "command-line flags in one string, e.g. '--direct_num_workers=2 "
    "--direct_running_mode=multi_processing'")
FILES_PER_BATCH = flags.DEFINE_integer(
    "files_per_batch", 8, "with --runner: files whose windows share network "
    "calls")
