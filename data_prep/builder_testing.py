"""A DatasetBuilderTestCase whose dummy data is generated at test time.

Dummy media are never committed: each builder test names a function that
writes its dummy data into a fresh temporary folder (from
`data_prep.dummy_media` or the builder's own generator), which becomes the
test's manual / download dir.
"""

import tempfile

import tensorflow_datasets as tfds


class GeneratedDummyDataTestCase(tfds.testing.DatasetBuilderTestCase):
  """Set `write_dummy_data(directory)` (a staticmethod) in the subclass."""

  SKIP_CHECKSUMS = True

  def test_session(self, *args, **kwargs):  # pylint: disable=useless-parent-delegation
    return super().test_session(*args, **kwargs)

  # tf.test.TestCase's `test_session` is a context manager, not a test:
  # without this pytest reports it as a skipped test.
  test_session.__test__ = False

  @staticmethod
  def write_dummy_data(directory: str) -> None:
    del directory  # e.g. synthetic_av generates into the download dir itself

  @classmethod
  def setUpClass(cls):
    cls._dummy_dir = tempfile.TemporaryDirectory()
    cls.write_dummy_data(cls._dummy_dir.name)
    cls.EXAMPLE_DIR = cls._dummy_dir.name
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    cls._dummy_dir.cleanup()
