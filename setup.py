"""l3_tf: Look, Listen and Learn (L3-Net) in TensorFlow 2 / Keras 3.

Two stacks, chosen by the Python version (environment markers below):

- Python 3.10-3.12: TensorFlow 2.16.2 with tensorflow-io 0.37.1, whose file
  systems (s3://, hdfs://, az://) load only on TF 2.16; TF 2.16 in turn needs
  numpy < 2 and protobuf < 5.
- Python 3.13: TensorFlow 2.20-2.21 without tensorflow-io (it has no wheel
  for 3.13); object-storage paths there fail at once with an error saying so
  (l3_tf/platform/filesystems.py).

Every dependency whose releases have changed an API we use has an upper
bound: a new major version is a deliberate bump after the suite passes on it.
"""

import setuptools

_OLD_STACK = 'python_version < "3.13"'   # TF 2.16.2 + tensorflow-io
_NEW_STACK = 'python_version >= "3.13"'  # TF 2.20/2.21, no tensorflow-io

setuptools.setup(
    name="l3_tf",
    version="0.2.0",
    description=("A faithful TensorFlow/Keras reproduction of L3-Net "
                 "(Look, Listen and Learn, Arandjelovic & Zisserman, 2017)"),
    python_requires=">=3.10,<3.14",
    packages=setuptools.find_packages(include=["l3_tf*", "data_prep*",
                                               "experiments*"]),
    package_data={"": ["*.txt", "*.csv", "*.tsv"]},
    include_package_data=True,
    install_requires=[
        f"tensorflow==2.16.2; {_OLD_STACK}",
        f"tensorflow-io==0.37.1; {_OLD_STACK}",
        f"numpy>=1.23,<2; {_OLD_STACK}",
        f"protobuf>=3.20,<5; {_OLD_STACK}",
        # tensorflow-metadata >= 1.17 imports google.protobuf.runtime_version,
        # which exists only in protobuf >= 5: TFDS then fails to import.
        f"tensorflow-metadata>=1.13,<1.17; {_OLD_STACK}",
        f"tensorflow>=2.20,<2.22; {_NEW_STACK}",
        f"numpy>=1.26,<3; {_NEW_STACK}",
        f"protobuf>=5.28,<7; {_NEW_STACK}",
        f"tensorflow-metadata>=1.17,<1.22; {_NEW_STACK}",
        # Keras 3 is the API we write against (functional models, ops).
        "keras>=3.3,<4",
        # tf.summary (training curves, l3_tf.analysis.visualize) is implemented by
        # TensorBoard, which TensorFlow >= 2.20 no longer installs.
        "tensorboard>=2.16,<3",
        "tensorflow-datasets>=4.9,<4.10",
        "scikit-learn>=1.3,<2",
        "scipy>=1.10,<2",
        "absl-py>=1.0,<3",
        # >= 14: VideoFrame.rotation (phone videos are stored rotated);
        # tested on 14-19 (19 dropped av.open's metadata_errors argument).
        "av>=14,<20",
        "matplotlib>=3.7,<4",
        # Imported directly (frames and images; TFDS paths), not only
        # through matplotlib and tensorflow-datasets.
        "pillow>=9,<13",
        "etils>=1.5,<2",
        "tqdm>=4,<5",
        # l3-embed --format=parquet: one row per window, queryable in place.
        "pyarrow>=14,<27",
        # TFDS 4.9 evaluates importlib_resources.abc.Traversable for any
        # builder outside its package (only declared for Python < 3.9).
        "importlib_resources>=5",
        # The `tfds build` command line imports mlcroissant at start-up.
        "mlcroissant>=1.0,<2",
    ],
    extras_require={
        # CUDA wheels for the same TensorFlow version (Linux x86_64).
        "gpu": [f"tensorflow[and-cuda]==2.16.2; {_OLD_STACK}",
                f"tensorflow[and-cuda]>=2.20,<2.22; {_NEW_STACK}"],
        # Building datasets on a Beam runner (Dataflow, Spark, Flink).
        "beam": ["apache-beam>=2.50,<3"],
        # Converting exports to LiteRT (TFLite) and ONNX and checking them.
        # onnx >= 1.18 imports ml_dtypes.float4_e2m1fn, absent from the
        # ml_dtypes 0.3 that TF 2.16 pins: below 1.18 on the old stack.
        "export": ["ai-edge-litert>=1.2,<3", "tf2onnx>=1.16,<2",
                   "onnxruntime>=1.17,<2", f"onnx>=1.15,<1.18; {_OLD_STACK}",
                   f"onnx>=1.15,<2; {_NEW_STACK}"],
        # Approximate nearest-neighbour index behind l3-search.
        "search": ["usearch>=2.12,<3"],
        # The PyTorch peer in benchmarks/ (never imported by l3_tf or tests).
        # faiss-cpu and hnswlib: the ANN libraries usearch was measured
        # against (benchmarks/search_index.py); hnswlib builds from source.
        "bench": ["torch>=2.4,<3", "faiss-cpu>=1.8,<2", "hnswlib>=0.8,<1"],
        # dill: tfds.testing (DatasetBuilderTestCase) imports it.
        # apache-beam: the DirectRunner test of the builders runs in
        # `make test`. moto[server]: a real S3-compatible server on loopback
        # for the object-storage tests. hypothesis: fuzzed command lines.
        "test": ["pytest>=7,<10", "pytest-xdist>=3,<4", "dill>=0.3",
                 "apache-beam>=2.50,<3", "moto[server]>=5,<6",
                 "hypothesis>=6.80,<7"],
    },
    entry_points={
        "console_scripts": [
            "l3-embed = experiments.embed:run",
            "l3-score = experiments.score:run",
            "l3-search = experiments.search:run",
        ],
    },
)
