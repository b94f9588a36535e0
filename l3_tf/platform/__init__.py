"""Platform doors: object-storage file systems, stack differences, CPU features.

The bottom layer: nothing here imports another part of l3_tf.
"""
