"""A similarity matrix as a small RGB image, for TensorBoard, without drawing a figure.

The probe runs during training, so its image must cost next to nothing:
each cell becomes a block of pixels coloured by a diverging colour map
(blue = +1, white = 0, red = -1; grey = undefined), with no matplotlib figure
or text rendering. Rows and columns follow the language order given in the
summary's description.
"""

from __future__ import annotations

import matplotlib
import numpy as np

COLOR_MAP = "RdBu"
UNDEFINED_RGB = (0.6, 0.6, 0.6)


def heatmap_image(matrix, cell_pixels: int = 16, vmin: float = -1.0, vmax: float = 1.0) -> np.ndarray:
    """``[1, L*cell_pixels, L*cell_pixels, 3]`` uint8 image of `matrix` (a batch of one)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"heatmap_image: expected a 2-D matrix, got shape {matrix.shape}.")
    scaled = (np.nan_to_num(matrix, nan=0.0) - vmin) / (vmax - vmin)
    rgb = matplotlib.colormaps[COLOR_MAP](np.clip(scaled, 0.0, 1.0))[..., :3]
    rgb[~np.isfinite(matrix)] = UNDEFINED_RGB
    pixels = np.repeat(np.repeat(rgb, cell_pixels, axis=0), cell_pixels, axis=1)
    return (pixels * 255).round().astype(np.uint8)[None]
