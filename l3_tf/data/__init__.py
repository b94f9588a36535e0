"""Data (PAPER.md §1, §3): media decoding, stored examples, the audio and image
front ends, pair drawing and the input pipeline.

Layer: above `platform`; below everything else.
"""
