"""Training losses (registered in ``manager.LOSSES``) and ``compute_panoptic_loss``."""
from .panoptic_losses import (TopKCrossEntropyLoss, WeightedL1Loss, WeightedMSELoss,  # noqa: F401
                              compute_panoptic_loss)
