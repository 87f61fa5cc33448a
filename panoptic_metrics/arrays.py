"""Array conversion shared by metrics and loops (no paddle import needed)."""
import numpy as np


def to_numpy(x):
    """Paddle tensor (anything with `.numpy()`), list or array -> numpy array."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    return np.asarray(x)
