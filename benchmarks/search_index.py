"""ANN libraries for `l3-search`, against brute-force numpy on the same vectors.

For N unit vectors in 128-d (clustered like a collection of videos: each a
random centre plus noise, so that neighbours are meaningful) and Q held-out
queries, each library builds an index (HNSW, M=16, efConstruction=128,
ef=64; faiss and hnswlib with the same settings) and answers top-10 queries
one at a time, as `l3-search query` does. Printed per library: build rate
(vectors/s), mean single-query latency (ms), recall@10 against the exact
answer; and brute force's latency (one matrix-vector product + argpartition
over the float32 [N, 128] array). Libraries alternate within each round and
the best round is kept (other processes slow rounds down, never speed one
up); `ratio_vs_numpy` = numpy latency / library latency of the same round.

  python benchmarks/search_index.py [--num_vectors=100000] [--queries=200]
      [--rounds=3] [--threads=2] [--libraries=usearch,hnswlib,faiss]

(`--libraries` sets the order within a round: on a machine whose load
drifts, run a second time in the reverse order.)

faiss-cpu and hnswlib are not dependencies: install them to compare
(`pip install faiss-cpu hnswlib`); absent ones are reported as such.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import time

from absl import app
from absl import flags

import numpy as np

_N = flags.DEFINE_integer("num_vectors", 100_000, "index size")
_Q = flags.DEFINE_integer("queries", 200, "single queries timed")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "alternating rounds")
_THREADS = flags.DEFINE_integer("threads", 2, "build threads")
_LIBRARIES = flags.DEFINE_list("libraries", ["usearch", "hnswlib", "faiss"],
                               "libraries, in the order each round runs them")
DIM, K, M, EF_ADD, EF = 128, 10, 16, 128, 64


def _data(n, q, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((max(1, n // 40), DIM))
  def draw(count):
    x = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.standard_normal(
        (count, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
  return draw(n), draw(q)


def _usearch(data, queries, threads):
  from usearch.index import Index
  started = time.perf_counter()
  index = Index(ndim=DIM, metric="l2sq", dtype="f32", connectivity=M,
                expansion_add=EF_ADD, expansion_search=EF)
  index.add(np.arange(len(data)), data, threads=threads)
  build = time.perf_counter() - started
  started = time.perf_counter()
  found = [index.search(q, K).keys for q in queries]
  return build, (time.perf_counter() - started) / len(queries), found


def _hnswlib(data, queries, threads):
  import hnswlib
  started = time.perf_counter()
  index = hnswlib.Index(space="l2", dim=DIM)
  index.init_index(max_elements=len(data), M=M, ef_construction=EF_ADD)
  index.add_items(data, np.arange(len(data)), num_threads=threads)
  index.set_ef(EF)
  build = time.perf_counter() - started
  started = time.perf_counter()
  found = [index.knn_query(q[None], K, num_threads=1)[0][0] for q in queries]
  return build, (time.perf_counter() - started) / len(queries), found


def _faiss(data, queries, threads):
  import faiss
  faiss.omp_set_num_threads(threads)
  started = time.perf_counter()
  index = faiss.IndexHNSWFlat(DIM, M)
  index.hnsw.efConstruction = EF_ADD
  index.add(data)
  index.hnsw.efSearch = EF
  build = time.perf_counter() - started
  faiss.omp_set_num_threads(1)
  started = time.perf_counter()
  found = [index.search(q[None], K)[1][0] for q in queries]
  return build, (time.perf_counter() - started) / len(queries), found


def _numpy(data, queries):
  started = time.perf_counter()
  found = []
  for q in queries:
    d = data @ q  # [N] (unit vectors: nearest = largest dot product)
    top = np.argpartition(-d, K)[:K]
    found.append(top[np.argsort(-d[top])])
  return (time.perf_counter() - started) / len(queries), found


def _recall(found, exact):
  return float(np.mean([len(set(map(int, f)) & set(map(int, e))) / K
                        for f, e in zip(found, exact)]))


def main(argv):
  del argv
  data, queries = _data(_N.value, _Q.value)
  known = {"usearch": _usearch, "hnswlib": _hnswlib, "faiss": _faiss}
  libraries = {name: known[name] for name in _LIBRARIES.value}
  available = {}
  for name, fn in libraries.items():
    try:
      __import__({"usearch": "usearch", "hnswlib": "hnswlib",
                  "faiss": "faiss"}[name])
      available[name] = fn
    except ImportError:
      print(json.dumps({"library": name, "status": "not installed"}))
  best = {}
  for round_ in range(_ROUNDS.value):
    numpy_latency, exact = _numpy(data, queries)
    best.setdefault("numpy", {"latency_ms": 1e9})
    best["numpy"]["latency_ms"] = min(best["numpy"]["latency_ms"],
                                      1e3 * numpy_latency)
    for name, fn in available.items():
      build, latency, found = fn(data, queries, _THREADS.value)
      entry = best.setdefault(name, {"build_vectors_per_s": 0,
                                     "latency_ms": 1e9, "ratios": []})
      entry["build_vectors_per_s"] = max(entry["build_vectors_per_s"],
                                         len(data) / build)
      entry["latency_ms"] = min(entry["latency_ms"], 1e3 * latency)
      entry["recall@10"] = _recall(found, exact)
      entry["ratios"].append(round(numpy_latency / latency, 1))
  for name, entry in best.items():
    if "ratios" in entry:
      entry["ratio_vs_numpy_per_round"] = entry.pop("ratios")
    print(json.dumps({"library": name, "num_vectors": len(data),
                      **{k: (round(v, 3) if isinstance(v, float) else v)
                         for k, v in entry.items()},
                      "load_average": os.getloadavg()}))


if __name__ == "__main__":
  app.run(main)
