"""The paper's quantitative protocols (PAPER.md §5): sound transfer (SVM,
fine-tuning), the visual linear probe, the AVC table with its supervised
baselines, retrieval, result records and the results report.

Layer: the top of the library; it embeds through `serving`.
"""
