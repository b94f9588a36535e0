"""A real S3-compatible server (moto's server mode) on a free loopback port,
for the tests of object storage (`tests/platform/object_storage_test.py`,
`tests/serving/embed_beam_test.py`)."""

import contextlib
import os
import socket

BUCKET = "l3-test"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class S3Server:
  """moto's S3 server on 127.0.0.1:port; stop/start keep its objects (they
  live in this process)."""

  def __init__(self):
    from moto.server import ThreadedMotoServer  # pylint: disable=g-import-not-at-top
    self._factory = ThreadedMotoServer
    self.port = free_port()
    self.endpoint = f"http://127.0.0.1:{self.port}"
    self._server = None

  def start(self):
    self._server = self._factory(ip_address="127.0.0.1", port=self.port,
                                 verbose=False)
    self._server.start()

  def stop(self):
    if self._server is not None:
      self._server.stop()
      self._server = None

  def client(self):
    import boto3  # pylint: disable=g-import-not-at-top
    return boto3.client("s3", endpoint_url=self.endpoint,
                        region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test")

  def keys(self, prefix: str) -> list[str]:
    pages = self.client().get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", ())]

  def env(self) -> dict[str, str]:
    """The environment of a process that uses the server through
    tensorflow-io (`S3_ENDPOINT`...)."""
    env = dict(os.environ)
    env.update(S3_ENDPOINT=self.endpoint, S3_USE_HTTPS="0", S3_VERIFY_SSL="0",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION="us-east-1", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([ROOT, TESTS]))
    return env

  def beam_options(self) -> str:
    """The pipeline options of Beam's S3 file system for this server."""
    return (f"--s3_endpoint_url={self.endpoint} --s3_access_key_id=test "
            "--s3_secret_access_key=test --s3_region_name=us-east-1")


@contextlib.contextmanager
def running_server():
  """A started server with the bucket `BUCKET`; stopped after."""
  server = S3Server()
  server.start()
  try:
    server.client().create_bucket(Bucket=BUCKET)
    yield server
  finally:
    server.stop()
