"""The networks (PAPER.md §2): vision and audio towers, fusion heads (L3, AVE-Net),
the fused BatchNorm and the training precision.

Layer: above `data` (audio constants, image ops).
"""
