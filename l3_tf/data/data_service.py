"""A disaggregated input pipeline: the tf.data service, in one place.

Drawing 256 pairs per step (one JPEG decode, crop, jitter and STFT each) can
need more CPU than the accelerator host has. The tf.data service moves the
pipeline to other machines:

  dispatcher  (one, anywhere)    knows the workers, hands out jobs
  workers     (N CPU machines)   each runs a whole copy of the pipeline
  trainer     (the GPU host)     registers its pipeline's graph with the
                                 dispatcher and reads finished batches from
                                 all the workers (`data.service_address`)

Start the servers with `python -m experiments.data_service --role=...`.

Every worker runs the same graph, so with a fixed seed every worker would
produce the same pairs. `per_worker_seed` makes each copy of the pipeline
draw its own seed when it starts: no two workers (and no restarted worker)
repeat each other's pairs. Each pair still comes out of the ordinary
sampler, so positives still lie inside their audio window. A run through the
service is therefore not reproducible pair for pair; it is not anyway, since
which worker's batch arrives first depends on timing.

Workers read the dataset files themselves: `data.data_dir` must name the
same files on every worker (a shared or object-store path).
"""

import signal
import threading
from typing import Callable

from absl import logging
import tensorflow as tf

PROTOCOL = "grpc"


def split_address(address: str) -> tuple[str, int]:
  """("host", port) of "grpc://host:port" or "host:port".

  Raises:
    ValueError: no port, a port out of range, or another protocol.
  """
  rest = address
  if "://" in address:
    protocol, rest = address.split("://", 1)
    if protocol != PROTOCOL:
      raise ValueError(f"data service address {address!r}: protocol "
                       f"{protocol!r}, expected {PROTOCOL!r}")
  host, sep, port = rest.rpartition(":")
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ValueError(f"data service address {address!r} must look like "
                     f"{PROTOCOL}://host:port")
  return host, int(port)


def service_url(address: str) -> str:
  """"grpc://host:port" of any accepted form of an address."""
  host, port = split_address(address)
  return f"{PROTOCOL}://{host}:{port}"


def per_worker_seed(seed: int, make_dataset: Callable[[tf.Tensor], tf.data.Dataset]
                    ) -> tf.data.Dataset:
  """`make_dataset(s)` where `s` is drawn afresh by each copy of the pipeline.

  `s` is `seed` XOR a 62-bit draw made when the copy starts iterating, by a
  random op with no seed attribute (so neither the graph nor a global seed
  fixes it: every worker process draws its own).

  Args:
    seed: the run's pipeline seed (an int).
    make_dataset: builds the seeded part of the pipeline from an int64
      scalar tensor.
  """
  base = tf.constant(seed, tf.int64)

  def draw(_):
    # seed = seed2 = 0: seeded nondeterministically, per kernel instance.
    return tf.raw_ops.RandomUniformInt(
        shape=tf.constant([], tf.int32), minval=tf.constant(0, tf.int64),
        maxval=tf.constant(2**62, tf.int64), seed=0, seed2=0)

  def seeded(s):
    # The ops traced here take their seeds from `s` alone: drop the graph
    # seed inherited from `tf.random.set_seed` (the same on every worker
    # anyway; and a global seed of 0 makes tf.data test a tensor seed
    # against (0, 0) in Python, which fails).
    tf.compat.v1.get_default_graph().seed = None
    return make_dataset(tf.bitwise.bitwise_xor(base, s))

  seeds = tf.data.Dataset.from_tensors(0).map(draw)
  return seeds.flat_map(seeded)


def distribute(dataset: tf.data.Dataset, address: str) -> tf.data.Dataset:
  """Registers `dataset` with the service at `address`; reads it back.

  Every worker produces the whole dataset (no sharding: the training stream
  is endless and shuffled) and the reader takes elements from all of them,
  first come first served. Each reader gets a job of its own, so two
  trainer processes never take each other's batches.
  """
  return dataset.apply(tf.data.experimental.service.distribute(
      processing_mode=tf.data.experimental.service.ShardingPolicy.OFF,
      service=service_url(address)))


def start_dispatcher(port: int = 0) -> tf.data.experimental.service.DispatchServer:
  """A running dispatcher on `port` (0: any free port; see `.target`)."""
  if port < 0:
    raise ValueError(f"port={port} must be >= 0")
  return tf.data.experimental.service.DispatchServer(
      tf.data.experimental.service.DispatcherConfig(port=port))


def start_worker(dispatcher_address: str, port: int = 0,
                 worker_host: str = "localhost"
                 ) -> tf.data.experimental.service.WorkerServer:
  """A running worker registered with the dispatcher.

  Args:
    dispatcher_address: "grpc://host:port" or "host:port".
    port: this worker's port (0: any free port).
    worker_host: the name the trainers reach this machine by.
  """
  if port < 0:
    raise ValueError(f"port={port} must be >= 0")
  host, dispatcher_port = split_address(dispatcher_address)
  return tf.data.experimental.service.WorkerServer(
      tf.data.experimental.service.WorkerConfig(
          dispatcher_address=f"{host}:{dispatcher_port}",
          worker_address=f"{worker_host}:%port%", port=port))


def port_of(server) -> int:
  """The port a dispatcher or worker started with `port=0` is bound to."""
  return int(server._address.rsplit(":", 1)[1])  # pylint: disable=protected-access


def serve_until_terminated(server, name: str) -> str:
  """Blocks until SIGTERM or SIGINT, then stops `server`; returns the signal.

  Must run in the main thread (signal handlers).
  """
  stop = threading.Event()
  received = []

  def handle(signum, frame):
    del frame
    received.append(signal.Signals(signum).name)
    stop.set()

  previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM,
                                                     signal.SIGINT)}
  try:
    while not stop.wait(0.5):
      pass
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  logging.info("%s: %s received, stopping", name, received[0])
  server._stop()  # pylint: disable=protected-access  (no public stop)
  return received[0]
