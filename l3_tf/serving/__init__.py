"""Using trained networks: SavedModel and other export formats, the embedding
API, file embedding, correspondence scores and the search index.

Layer: above `analysis` (heatmaps) and `training` (workdirs).
"""
