"""Analysis (PAPER.md §5, qualitative): unit selectivity, sound localisation,
overlays and the figures.

Layer: above `training` (it reads trained workdirs); below `serving`, whose
`l3-score --heatmap` draws its localisation.
"""
