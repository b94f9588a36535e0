"""Cross-modal and within-modality retrieval on a labelled video split.

Items: from each usable video of the split, `items_per_video` frames spread
evenly over it, each with the 1-second sound window centred on it (the
examples of `l3_tf.analysis.visualize.example_dataset`: central crops, gain 1). A
query is one item's frame or sound; the gallery is every item in the other
modality (cross-modal) or in the same one (within a modality), minus the
items of the query's own video (`exclude_same_video`, default; otherwise
minus the query itself within a modality): what is measured is finding
*other* videos of the class, not the frame's own soundtrack or a
neighbouring frame. Relevance is binary: same class label.

Rankings, per model (`METHODS`):

  shared_128   AVE-Net only: Euclidean distance in the shared, unit-norm
               128-d space (`model.projections_of`), nearest first.
  fusion_head  L3 only, cross-modal only: P(corresponds) of the network's
               own fusion head over every (frame, sound) pair, highest
               first (Q x G forward passes of the head; fine for galleries
               of a few thousand).
  cosine_512   cosine similarity of the two towers' 512-d pool4 vectors,
               highest first. Cross-modal, this compares vectors of two
               different spaces: it is what L3 offers without its head.

Metrics (`ranking_metrics`), averaged over queries:

  recall@k   fraction of queries with at least one relevant item among the
             first k (the "hit rate" definition usual for class-level
             relevance, not the fraction of all relevant items retrieved).
  mAP        mean over queries of average precision over the full ranking:
             mean of precision@r over the ranks r of the relevant items.
  nDCG@30    DCG@30 = sum_{r <= 30} rel_r / log2(r + 1), divided by the DCG
             of an ideal ranking (min(30, #relevant) relevant items first).

Ties in a ranking are broken by gallery order (a stable sort).
"""

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import frame_sound_examples
from l3_tf.data import input_pipeline
from l3_tf.model import networks as model_lib

IMAGE = "image"
AUDIO = "audio"
DIRECTIONS = {"audio_to_image": (AUDIO, IMAGE), "image_to_audio": (IMAGE, AUDIO),
              "image_to_image": (IMAGE, IMAGE), "audio_to_audio": (AUDIO, AUDIO)}
SHARED = "shared_128"
HEAD = "fusion_head"
COSINE = "cosine_512"
METHODS = (SHARED, HEAD, COSINE)


@dataclasses.dataclass(frozen=True)
class RetrievalOptions:
  """What to read and how to rank.

  Attributes:
    split: the split queries and gallery come from.
    max_videos: videos read from the split.
    items_per_video: frames (each with its centred sound) per video.
    batch_size: examples per forward pass.
    ks: the k of recall@k.
    ndcg_at: the cut-off of nDCG.
    max_head_pairs: largest Q x G scored through an L3 fusion head; a larger
      gallery skips `fusion_head` (with a note in the results).
    exclude_same_video: leave the query's own video out of its gallery.
  """

  split: str = "test"
  max_videos: int = 1000
  items_per_video: int = 1
  batch_size: int = 32
  ks: tuple[int, ...] = (1, 5, 10)
  ndcg_at: int = 30
  max_head_pairs: int = 4_000_000
  exclude_same_video: bool = True

  def __post_init__(self):
    for name in ("max_videos", "items_per_video", "batch_size", "ndcg_at",
                 "max_head_pairs"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
    if not self.ks or min(self.ks) < 1:
      raise ValueError(f"ks={self.ks} must be positive integers")


def ranking_metrics(similarity: np.ndarray, query_labels: np.ndarray,
                    gallery_labels: np.ndarray, exclude: np.ndarray | None = None,
                    ks=(1, 5, 10), ndcg_at: int = 30) -> dict[str, float]:
  """recall@k, mAP and nDCG@`ndcg_at` of ranking a gallery for each query.

  Args:
    similarity: [Q, G], higher = more similar.
    query_labels: [Q] class of each query.
    gallery_labels: [G] class of each gallery item.
    exclude: optional bool [Q, G]; True items are left out of that query's
      ranking (the query itself, within a modality).
    ks: the k of recall@k.
    ndcg_at: nDCG cut-off.

  Returns:
    {"recall@1": ..., "map", f"ndcg@{ndcg_at}", "chance_recall@1" (expected
     recall@1 of a random ranking), "num_queries", "gallery_size"}. Queries
    without any relevant item are left out of every average.

  Raises:
    ValueError: shapes that do not match.
  """
  similarity = np.asarray(similarity, np.float64)
  query_labels = np.asarray(query_labels)
  gallery_labels = np.asarray(gallery_labels)
  q, g = similarity.shape
  if query_labels.shape != (q,) or gallery_labels.shape != (g,):
    raise ValueError(f"similarity is {similarity.shape} but there are "
                     f"{query_labels.shape} query and {gallery_labels.shape} "
                     "gallery labels")
  if exclude is None:
    exclude = np.zeros((q, g), bool)
  if exclude.shape != (q, g):
    raise ValueError(f"exclude is {exclude.shape}, expected {(q, g)}")
  recalls = {k: [] for k in ks}
  aps, ndcgs, chance = [], [], []
  discounts = 1.0 / np.log2(np.arange(2, ndcg_at + 2))  # [ndcg_at]
  for i in range(q):
    keep = ~exclude[i]
    order = np.argsort(-similarity[i, keep], kind="stable")
    relevant = (gallery_labels[keep] == query_labels[i])[order]  # [G'] bool
    count = int(relevant.sum())
    if count == 0:
      continue
    for k in ks:
      recalls[k].append(float(relevant[:k].any()))
    ranks = np.flatnonzero(relevant) + 1  # 1-based ranks of relevant items
    aps.append(float(np.mean(np.arange(1, count + 1) / ranks)))
    top = relevant[:ndcg_at].astype(np.float64)
    ideal = discounts[:min(count, ndcg_at)].sum()
    ndcgs.append(float((top * discounts[:top.size]).sum() / ideal))
    chance.append(count / relevant.size)
  result = {f"recall@{k}": float(np.mean(v)) if v else float("nan")
            for k, v in recalls.items()}
  result.update({
      "map": float(np.mean(aps)) if aps else float("nan"),
      f"ndcg@{ndcg_at}": float(np.mean(ndcgs)) if ndcgs else float("nan"),
      "chance_recall@1": float(np.mean(chance)) if chance else float("nan"),
      "num_queries": len(aps),
      "gallery_size": int(g),
  })
  return result


def _normalized(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[n, d], [m, d] -> [n, m] cosine similarities."""
  return _normalized(np.asarray(a, np.float64)) @ _normalized(
      np.asarray(b, np.float64)).T


def negative_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[n, d], [m, d] -> [n, m] minus the Euclidean distances (nearest first)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  squared = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T)
  return -np.sqrt(np.maximum(squared, 0.0))


def head_scores(head: keras.Model, vision_512: np.ndarray,
                audio_512: np.ndarray, batch_size: int = 4096) -> np.ndarray:
  """P(corresponds) of `head` for every (frame i, sound j): [n_v, n_a]."""
  n_v, n_a = len(vision_512), len(audio_512)
  vi, ai = np.meshgrid(np.arange(n_v), np.arange(n_a), indexing="ij")
  vi, ai = vi.ravel(), ai.ravel()

  @tf.function(autograph=False)
  def run(v, a):
    return tf.nn.softmax(tf.cast(head([v, a], training=False),
                                 tf.float32))[:, 1]  # [b]

  scores = [run(vision_512[vi[s:s + batch_size]],
                audio_512[ai[s:s + batch_size]]).numpy()
            for s in range(0, vi.size, batch_size)]
  return np.concatenate(scores).reshape(n_v, n_a)


def collect_items(avc: keras.Model, config, builder,
                  options: RetrievalOptions) -> dict[str, np.ndarray]:
  """Embeds the items of `options.split` with `avc`.

  Returns:
    {"labels": [n], "video_ids": [n] str, "frame_times": [n],
     "image_512", "audio_512": [n, W4], and for an AVE-Net "image_128",
     "audio_128": [n, 128] unit-norm}.

  Raises:
    input_pipeline.DatasetError: the split is missing or has no labels.
  """
  if "label" not in builder.info.features:
    raise input_pipeline.DatasetError(
        f"{builder.info.full_name} has no 'label' feature: retrieval "
        "relevance is 'same label', so the dataset must be labelled")
  dataset = frame_sound_examples.example_dataset(config, builder, options.split,
                                      options.max_videos,
                                      options.items_per_video,
                                      options.batch_size)
  vision, audio, _ = model_lib.towers_of(avc)
  shared = model_lib.has_shared_space(avc)
  projections = model_lib.projections_of(avc) if shared else None

  @tf.function(autograph=False)
  def embed(features):
    v = vision(features["image"], training=False)["embedding_512"]  # [b, W4]
    a = audio(features["spectrogram"], training=False)["embedding_512"]
    out = {"image_512": v, "audio_512": a}
    if projections is not None:
      out["image_128"] = projections[0](v, training=False)  # [b, 128]
      out["audio_128"] = projections[1](a, training=False)
    return out

  parts: dict[str, list] = {}
  for features, examples in dataset:
    for key, value in embed(features).items():
      parts.setdefault(key, []).append(value.numpy())
    for key in ("label", "video_id", "frame_time"):
      parts.setdefault(key, []).append(examples[key].numpy())
  if not parts:
    raise input_pipeline.DatasetError(
        f"split {options.split!r} of {builder.info.full_name} gave no items")
  items = {key: np.concatenate(value) for key, value in parts.items()}
  items["labels"] = items.pop("label")
  items["video_ids"] = items.pop("video_id").astype(str)
  items["frame_times"] = items.pop("frame_time")
  if (items["labels"] < 0).any():
    raise input_pipeline.DatasetError(
        f"{int((items['labels'] < 0).sum())} items of split {options.split!r} "
        "have no label (-1); retrieval needs every video labelled")
  return items


def methods_for(avc: keras.Model) -> tuple[str, ...]:
  """The rankings a model supports (see the module docstring)."""
  if model_lib.has_shared_space(avc):
    return (SHARED, COSINE)
  return (HEAD, COSINE)


def similarities(method: str, items: dict[str, np.ndarray], query: str,
                 gallery: str, head: keras.Model | None = None
                 ) -> np.ndarray | None:
  """[Q, G] similarity of `method` for one direction (None: not defined)."""
  if method == SHARED:
    return negative_distances(items[f"{query}_128"], items[f"{gallery}_128"])
  if method == COSINE:
    return cosine_similarity(items[f"{query}_512"], items[f"{gallery}_512"])
  if method == HEAD:
    if query == gallery:
      return None  # the head scores (frame, sound) pairs only
    scores = head_scores(head, items["image_512"], items["audio_512"])
    return scores if query == IMAGE else scores.T
  raise ValueError(f"method={method!r}; expected one of {METHODS}")


def excluded(video_ids: np.ndarray, same_modality: bool,
             exclude_same_video: bool) -> np.ndarray:
  """[n, n] bool: the gallery items left out of each query's ranking."""
  if exclude_same_video:
    return video_ids[:, None] == video_ids[None, :]
  return np.eye(len(video_ids), dtype=bool) & same_modality


def evaluate(avc: keras.Model, config, builder,
             options: RetrievalOptions = RetrievalOptions()) -> dict[str, Any]:
  """Retrieval metrics of one network in every direction it supports.

  Returns:
    {"methods": {method: {direction: metrics}}, "num_items",
     "num_videos", "num_classes", "split", "notes": [...]}.
  """
  items = collect_items(avc, config, builder, options)
  n = len(items["labels"])
  head = avc.get_layer("fusion_head")
  results: dict[str, dict] = {}
  notes = []
  for method in methods_for(avc):
    if method == HEAD and n * n > options.max_head_pairs:
      notes.append(f"fusion_head skipped: {n} x {n} pairs > max_head_pairs="
                   f"{options.max_head_pairs}")
      continue
    per_direction = {}
    for direction, (query, gallery) in DIRECTIONS.items():
      similarity = similarities(method, items, query, gallery, head)
      if similarity is None:
        continue
      exclude = excluded(items["video_ids"], query == gallery,
                         options.exclude_same_video)
      per_direction[direction] = ranking_metrics(
          similarity, items["labels"], items["labels"], exclude, options.ks,
          options.ndcg_at)
    results[method] = per_direction
  return {"methods": results, "num_items": n,
          "num_videos": int(len(set(items["video_ids"].tolist()))),
          "num_classes": int(len(set(items["labels"].tolist()))),
          "split": options.split, "notes": notes,
          "options": dataclasses.asdict(options)}


MODEL_NAMES = {"distance": "AVE-Net", "concat": "L3-Net"}
METHOD_LABELS = {SHARED: "shared 128-d distance", HEAD: "fusion head",
                 COSINE: "cosine of 512-d towers"}


def run(weights, options: RetrievalOptions = RetrievalOptions(),
        random_twins: bool = True, seed: int = 0) -> dict[str, Any]:
  """Retrieval with each trained network and (optionally) its random twin.

  Args:
    weights: training workdirs (the data is the first one's dataset; all
      must have been trained on the same one).
    options: what to read and how to rank.
    random_twins: also evaluate each architecture with random weights (same
      config, initialisation seed `seed`).
    seed: initialisation seed of the random twins.

  Returns:
    {"dataset", "split", "models": [{"weights", "model", "fusion",
     "trained", "step", "config", **evaluate(...)}]}.

  Raises:
    ValueError: no workdir, or workdirs trained on different datasets.
  """
  from l3_tf.training import workdir as workdir_lib  # pylint: disable=g-import-not-at-top

  if not weights:
    raise ValueError("weights is empty: give at least one training workdir")
  loaded = [workdir_lib.restore_avc_model(w) + (w,) for w in weights]
  datasets = {(c.data.dataset, c.data.data_dir) for c, _, _, _ in loaded}
  if len(datasets) > 1:
    raise ValueError(f"workdirs {list(weights)} were trained on different "
                     f"datasets {sorted(map(str, datasets))}; retrieval "
                     "compares them on one")
  first = loaded[0][0]
  builder = input_pipeline.load_builder(first.data.dataset, first.data.data_dir)
  models = []
  for config, avc, step, workdir in loaded:
    candidates = [(avc, step, workdir)]
    if random_twins:
      _, twin, description = workdir_lib.load_network("random", config, seed)
      candidates.append((twin, None, description))
    for network, network_step, description in candidates:
      models.append({
          "weights": description, "model": MODEL_NAMES[config.model.fusion],
          "fusion": config.model.fusion, "trained": network_step is not None,
          "step": network_step, "config": config,
          **evaluate(network, config, builder, options)})
  return {"dataset": first.data.dataset, "split": options.split,
          "models": models}


def table(results: dict[str, Any], direction: str = "audio_to_image") -> str:
  """A markdown table of one direction: a row per model and ranking."""
  lines = [f"{direction.replace('_', ' ')} on {results['dataset']} "
           f"({results['split']} split)", "",
           "| model | weights | ranking | R@1 | R@5 | R@10 | mAP | nDCG@30 | "
           "chance R@1 |", "|---|---|---|---|---|---|---|---|---|"]
  for model in results["models"]:
    for method, per_direction in model["methods"].items():
      m = per_direction.get(direction)
      if m is None:
        continue
      weights = f"trained ({model['step']} steps)" if model["trained"] else "random"
      lines.append(
          f"| {model['model']} | {weights} | {METHOD_LABELS[method]} | "
          + " | ".join(f"{100 * m[k]:.1f}" for k in (
              "recall@1", "recall@5", "recall@10", "map", "ndcg@30",
              "chance_recall@1")) + " |")
  return "\n".join(lines) + "\n"


def make_records(results: dict[str, Any], command_line: str,
                 env: dict[str, Any] | None = None,
                 run_seconds: float | None = None) -> list[dict[str, Any]]:
  """One report record (`l3_tf.evaluation.records`) per model and ranking; the value is
  sound-to-image recall@1, the details hold every direction's metrics."""
  from l3_tf.evaluation import records  # pylint: disable=g-import-not-at-top

  out = []
  for model in results["models"]:
    config = model["config"]
    for method, per_direction in model["methods"].items():
      name = model["model"] if model["trained"] else f"Ours random {model['model']}"
      out.append(records.make_record(
          experiment="retrieval", dataset=results["dataset"],
          method=f"{name} ({METHOD_LABELS[method]})", metric="recall@1",
          value=per_direction["audio_to_image"]["recall@1"],
          scale={
              "data": (f"{results['dataset']}: {model['num_items']} items "
                       f"({model['num_videos']} videos x "
                       f"{model['options']['items_per_video']}) of the "
                       f"{results['split']} split, {model['num_classes']} "
                       "classes, relevance = same label"),
              "network": records.network_scale(config.model),
              "training": records.training_scale(config, model["step"]),
          },
          details={"directions": per_direction, "notes": model["notes"]},
          command_line=command_line, run_seconds=run_seconds, env=env))
  return out
