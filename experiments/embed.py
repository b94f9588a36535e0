r"""`l3-embed`: embeddings of audio, image and video files.

  l3-embed audio sounds/ a.wav --model=EXPORT_OR_WORKDIR --output_dir=out
  l3-embed video clips/ --model=... --video_output=split --format=parquet
  l3-embed image 'photos/**/*.jpg' --model=... --embedding=512 --suffix=_l3

Writes per input `<output_dir>/<name><suffix>.npz` (`embedding` and
`timestamps`; for video `audio_embedding`, `image_embedding` and their shared
`timestamps`, or with --video_output=split `<name><suffix>_audio.npz` and
`<name><suffix>_image.npz`), beside each input when --output_dir is not
given; --format=parquet writes `.parquet` files with one row per window
(file, timestamp, modality, embedding). A timestamp is the CENTRE of the
1-second audio window, and for video also the time of the frame used (see
`l3_tf/serving/embed.py`). Existing outputs are skipped unless --overwrite.

With --runner=NAME (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner)
the same outputs are written by an Apache Beam pipeline
(`l3_tf/serving/embed_beam.py`; the `beam` extra): inputs may then be object-storage URLs too, --output_dir is
required, and --beam_options passes pipeline options through, e.g.

  l3-embed video clips/ --model=... --output_dir=out --runner=DirectRunner \
    --beam_options='--direct_num_workers=2 \
                    --direct_running_mode=multi_processing'

Ends with one summary line (files done, skipped, failed, windows, seconds);
failed inputs are listed in `<output_dir>/l3-embed_failed_<kind>.tsv`.
Exit status: 0 all done, 1 some inputs failed, 2 bad usage (one line on
stderr naming the bad flag, input or model).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import sys
import warnings

from absl import flags
import tqdm

from experiments import beam_flags
from l3_tf.model import finite
from l3_tf.platform import filesystems
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import embed_files
from l3_tf.serving import embed_inputs
from l3_tf.serving import file_jobs

_MODEL = flags.DEFINE_string(
    "model", None, "an exported SavedModel or a training workdir")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "folder for the outputs (default: beside each input)")
_SUFFIX = flags.DEFINE_string("suffix", "", "added to every output name")
_HOP = flags.DEFINE_float("hop_seconds", embed_lib.DEFAULT_HOP_SECONDS,
                          "time between consecutive embeddings, in (0, 1]")
_CENTER = flags.DEFINE_bool(
    "center", True, "pad half a window at the start so the first window is "
    "centred on t=0 (--nocenter: the first window starts at t=0)")
_BATCH = flags.DEFINE_integer("batch_size", embed_lib.DEFAULT_BATCH_SIZE,
                              "windows or images per network call")
_EMBEDDING = flags.DEFINE_string(
    "embedding", None, "512 (pool4) or the transfer tap: 'transfer', 6144 "
    "(audio) / 8192 (image), the default; for video 512 or the taps of both "
    "towers; 'shared': an AVE-Net's shared space (what l3-search indexes)")
_VIDEO_OUTPUT = flags.DEFINE_string(
    "video_output", "combined", "video: 'combined' (one file) or 'split' "
    "(<name>_audio and <name>_image)")
_FORMAT = flags.DEFINE_string("format", "npz", "'npz' or 'parquet'")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "re-embed existing outputs (default: skip them)")
_COMPUTE_DTYPE = flags.DEFINE_string(
    "compute_dtype", "float32", "for a workdir model: 'float32' or "
    "'bfloat16', the dtype of the convolutions")
_PROGRESS = flags.DEFINE_bool("progress", True, "show a progress bar")

USAGE = ("usage: l3-embed {audio,image,video} INPUTS... --model=PATH "
         "[--output_dir=DIR] [--suffix=S] [--video_output={combined,split}] "
         "[--format={npz,parquet}] "
         "[--embedding={512,6144,8192,transfer,shared}] "
         "[--hop_seconds=0.1] [--nocenter] [--batch_size=32] [--overwrite] "
         "[--runner=NAME [--beam_options='...']]")
EXIT_FAILED, EXIT_USAGE = 1, 2


class _Usage(Exception):
  """Bad usage: reported on one line, exit status 2."""


def _one_line(message) -> str:
  return " ".join(str(message).split())


def _usage_exit(message) -> None:
  print(f"l3-embed: error: {_one_line(message)} ({USAGE}; --helpfull for "
        "all flags)", file=sys.stderr)
  sys.exit(EXIT_USAGE)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with bad flags as exit status 2 and one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _usage_exit(e)


def _options(argv: list[str]) -> dict:
  """The checked arguments of `embed_files.embed_files` (raises _Usage)."""
  if len(argv) < 2 or argv[1] not in file_jobs.KINDS:
    given = repr(argv[1]) if len(argv) > 1 else "nothing"
    raise _Usage(f"the first argument must be one of "
                 f"{list(file_jobs.KINDS)}, got {given}")
  if len(argv) < 3:
    raise _Usage(f"no inputs: give files, folders or patterns after "
                 f"{argv[1]!r}")
  if not _MODEL.value:
    raise _Usage("--model is required: an exported SavedModel or a "
                 "training workdir")
  embed_inputs.check_choice("compute_dtype", _COMPUTE_DTYPE.value,
                         ("float32", "bfloat16"))
  kind = argv[1]
  options = dict(
      kind=kind, inputs=argv[2:], output_dir=_OUTPUT_DIR.value,
      suffix=_SUFFIX.value, overwrite=_OVERWRITE.value,
      video_output=_VIDEO_OUTPUT.value, output_format=_FORMAT.value,
      progress=_PROGRESS.value, hop_seconds=_HOP.value, center=_CENTER.value,
      embedding=file_jobs.normalize_embedding(kind, _EMBEDDING.value),
      batch_size=_BATCH.value)
  file_jobs.check_run_options(
      kind, **{k: options[k] for k in (
          "video_output", "output_format", "suffix", "embedding",
          "hop_seconds", "center", "batch_size")})
  return options


def _show_warning(message, category, *unused_args, **unused_kwargs):
  """Warnings (`embed.EmbedWarning`: short, silent, constant inputs) as one
  line each, above the progress bar."""
  tqdm.tqdm.write(f"l3-embed: {category.__name__}: {message}",
                  file=sys.stderr)


def _run_beam(argv) -> int:
  """--runner: the outputs written by a Beam pipeline
  (`l3_tf.serving.embed_beam`), whose file systems serve the inputs and
  --output_dir."""
  from l3_tf.serving import embed_beam  # pylint: disable=g-import-not-at-top
  try:
    options = _options(argv)
    embed_inputs.check_model_path(_MODEL.value)
    options.pop("progress")
    kind, inputs = options.pop("kind"), options.pop("inputs")
    summary = embed_beam.embed_files_beam(
        _MODEL.value, kind, inputs, runner=beam_flags.RUNNER.value,
        beam_options=beam_flags.BEAM_OPTIONS.value,
        compute_dtype=_COMPUTE_DTYPE.value,
        files_per_batch=beam_flags.FILES_PER_BATCH.value,
        report=lambda line: print(f"l3-embed: {line}", file=sys.stderr),
        **options)
  except (_Usage, ValueError, FileNotFoundError, ImportError) as e:
    _usage_exit(e)
  print(summary, file=sys.stderr)
  return EXIT_FAILED if summary.failed else 0


def main(argv):
  warnings.showwarning = _show_warning
  try:  # object storage unusable here: an environment error (exit 1)
    if not beam_flags.RUNNER.value:  # with --runner: Beam's file systems
      filesystems.prepare(_OUTPUT_DIR.value, "--output_dir")
    filesystems.prepare(_MODEL.value, "--model")
  except filesystems.FileSystemError as e:
    sys.exit(f"l3-embed: {e}")
  if beam_flags.RUNNER.value:
    return _run_beam(argv)
  try:
    options = _options(argv)
    # Inputs are resolved before the model loads: a typo fails at once.
    file_jobs.resolve_inputs(options["inputs"], options["kind"])
  except (_Usage, ValueError) as e:
    _usage_exit(e)
  try:
    embedder = embed_lib.Embedder.load(_MODEL.value, _COMPUTE_DTYPE.value)
  except finite.NonFiniteError as e:  # a broken model, not a usage error
    sys.exit(f"l3-embed: error: --model={_MODEL.value}: {e}")
  except Exception as e:  # pylint: disable=broad-except
    _usage_exit(f"--model={_MODEL.value}: {type(e).__name__}: {e}")
  kind = options.pop("kind")
  try:
    summary = embed_files.embed_files(embedder, kind, options.pop("inputs"),
                                      **options)
  except finite.NonFiniteError as e:
    sys.exit(f"l3-embed: error: {e}")
  except ValueError as e:  # inputs that changed since they were resolved
    _usage_exit(e)
  print(summary, file=sys.stderr)
  return EXIT_FAILED if summary.failed else 0


def run():
  """Console-script entry point (`l3-embed`)."""
  filesystems.run_main(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
