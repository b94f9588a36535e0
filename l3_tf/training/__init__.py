"""Training (PAPER.md §4): the loop, distribution, the workdir, the config,
evaluation during training and progress.

Layer: above `model` and `data`.
"""
