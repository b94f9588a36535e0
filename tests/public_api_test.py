"""The few names users call, exported by `l3_tf` itself, loaded on first use."""

import subprocess
import sys

import l3_tf
from l3_tf.serving import embed
from l3_tf.training import config
from l3_tf.training import train
from tests import testing


def test_every_public_name_resolves_to_its_library_object():
  assert l3_tf.Embedder is embed.Embedder
  assert l3_tf.Config is config.Config
  assert l3_tf.apply_overrides is config.apply_overrides
  assert l3_tf.train_and_evaluate is train.train_and_evaluate
  for name in l3_tf.__all__:
    assert getattr(l3_tf, name) is not None, name
  assert set(l3_tf.__all__) <= set(dir(l3_tf))


def test_an_unknown_name_is_an_attribute_error_naming_it():
  try:
    l3_tf.Embeder  # pylint: disable=pointless-statement
  except AttributeError as error:
    assert "'Embeder'" in str(error)
  else:
    raise AssertionError("l3_tf.Embeder resolved")


def test_importing_a_data_module_does_not_load_the_upper_layers():
  code = ("import sys\nimport l3_tf.data.media_video\n"
          "print(sorted(m for m in sys.modules if m.startswith('l3_tf.')))")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, timeout=300, cwd=testing.REPO_ROOT,
                        check=True)
  loaded = eval(done.stdout.strip().splitlines()[-1])  # pylint: disable=eval-used
  assert {"l3_tf.data.media", "l3_tf.data.media_audio",
          "l3_tf.data.media_video"} <= set(loaded)
  upper = [m for m in loaded if m.split(".")[1] in
           ("training", "serving", "evaluation", "analysis", "model")]
  assert not upper, upper


def test_the_overrides_work_through_the_public_names():
  base = l3_tf.Config()
  changed = l3_tf.apply_overrides(base, ["train.num_steps=7"])
  assert changed.train.num_steps == 7 and base.train.num_steps != 7
