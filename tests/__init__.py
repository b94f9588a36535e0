"""The test suite; its helpers are imported as `from tests import testing`."""
