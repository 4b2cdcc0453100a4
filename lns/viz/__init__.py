"""Figure and UMAP drawing shared by training callbacks, segmentation and the report."""

from lns.viz.figures import (
    label_colors,
    save_curves,
    save_image_grid,
    save_label_grid,
    save_method_rows,
    save_segmentation_panels,
)
from lns.viz.umap_plot import embed_umap, save_umap_scatter

__all__ = [
    "embed_umap",
    "label_colors",
    "save_curves",
    "save_image_grid",
    "save_label_grid",
    "save_method_rows",
    "save_segmentation_panels",
    "save_umap_scatter",
]
