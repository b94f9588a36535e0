"""Starts a tf.data service dispatcher or worker (`l3_tf.data.data_service`).

  python -m experiments.data_service --role=dispatcher --port=5050
  python -m experiments.data_service --role=worker --port=5051 \
      --dispatcher_address=grpc://dispatcher-host:5050 [--worker_host=cpu-7]

then train with `--set data.service_address=grpc://dispatcher-host:5050`.
Workers read the dataset files named by the trainer's config, so
`data.data_dir` must be reachable from every worker. Prints
"DATA_SERVICE <role> <address>" once serving; SIGTERM or Ctrl-C stops the
server and exits with status 0.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

from absl import app
from absl import flags

from experiments import cli
from l3_tf.data import data_service

_ROLE = flags.DEFINE_enum("role", None, ["dispatcher", "worker"],
                          "which server to run", required=True)
_PORT = flags.DEFINE_integer("port", 0, "port to serve on (0: any free port)")
_DISPATCHER = flags.DEFINE_string(
    "dispatcher_address", None, "worker only: grpc://host:port of the "
    "dispatcher")
_WORKER_HOST = flags.DEFINE_string(
    "worker_host", "localhost", "worker only: the host name trainers reach "
    "this worker by")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if _ROLE.value == "dispatcher":
    if _DISPATCHER.value:
      raise app.UsageError("--dispatcher_address is for --role=worker")
    server = data_service.start_dispatcher(_PORT.value)
    address = server.target
  else:
    if not _DISPATCHER.value:
      raise app.UsageError("--role=worker needs --dispatcher_address")
    server = data_service.start_worker(_DISPATCHER.value, _PORT.value,
                                       _WORKER_HOST.value)
    address = f"{_WORKER_HOST.value}:{data_service.port_of(server)}"
  print(f"DATA_SERVICE {_ROLE.value} {address}", flush=True)
  data_service.serve_until_terminated(server, _ROLE.value)


if __name__ == "__main__":
  cli.run(main)
