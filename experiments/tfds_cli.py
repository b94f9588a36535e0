"""TFDS's `tfds` command with an exit status that survives object storage.

  python -m experiments.tfds_cli build data_prep/esc10 \\
      --manual_dir=../shared/data/esc10 --data_dir=s3://bucket/tfds

Takes exactly the arguments of `tfds` (`build`, `new`, ...). A process that
used tensorflow-io's S3 file system aborts at exit with status 134 whether
or not its work succeeded (`l3_tf.platform.filesystems`); this runs the
same command under `filesystems.exit_preserving`, so the status is the
build's: 0 built, 1 failed. A plain `tfds build` onto s3://, hdfs:// or
az:// refuses at once, pointing here. Local and gs:// paths work either way.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

from tensorflow_datasets.scripts.cli import main as tfds_main

from l3_tf.platform import filesystems


def run():
  filesystems.exit_preserving(tfds_main.launch_cli)


if __name__ == "__main__":
  run()
