"""l3_tf: Look, Listen and Learn (L3-Net) in TensorFlow 2 / Keras 3."""

import setuptools

setuptools.setup(
    name="l3_tf",
    version="0.1.0",
    description=("A faithful TensorFlow/Keras reproduction of L3-Net "
                 "(Look, Listen and Learn, Arandjelovic & Zisserman, 2017)"),
    python_requires=">=3.10,<3.12",
    packages=setuptools.find_packages(include=["l3_tf*", "data_prep*",
                                               "experiments*"]),
    package_data={"": ["*.txt", "*.csv", "*.tsv"]},
    include_package_data=True,
    # The set below installs together on Python 3.11: tensorflow-io's ops
    # fail to load on TF newer than 2.16, and TF 2.16 needs numpy < 2 and
    # protobuf < 5.
    install_requires=[
        "tensorflow==2.16.2",
        "tensorflow-io==0.37.1",
        "tensorflow-datasets>=4.9,<5",
        # tensorflow-metadata >= 1.17 imports google.protobuf.runtime_version,
        # which exists only in protobuf >= 5: TFDS then fails to import.
        "tensorflow-metadata>=1.13,<1.17",
        "numpy>=1.23,<2",
        "protobuf>=3.20,<5",
        "scikit-learn>=1.3",
        "scipy>=1.10",
        "absl-py>=1.0",
        # >= 14: VideoFrame.rotation (phone videos are stored rotated).
        "av>=14",
        "matplotlib>=3.7",
        "tqdm>=4",
        # TFDS 4.9 evaluates importlib_resources.abc.Traversable for any
        # builder outside its package (only declared for Python < 3.9).
        "importlib_resources>=5",
        # The `tfds build` command line imports mlcroissant at start-up.
        "mlcroissant>=1.0",
    ],
    extras_require={
        # dill: tfds.testing (DatasetBuilderTestCase) imports it.
        # apache-beam: the DirectRunner test of the builders runs in
        # `make test`; 2.77 installs with protobuf < 5 and numpy < 2.
        "test": ["pytest>=7", "pytest-xdist>=3", "dill>=0.3",
                 "apache-beam>=2.50"],
        # Building datasets on a Beam runner (Dataflow, Spark, Flink).
        "beam": ["apache-beam>=2.50"],
    },
    entry_points={
        "console_scripts": [
            "l3-embed = experiments.embed:run",
            "l3-score = experiments.score:run",
        ],
    },
)
