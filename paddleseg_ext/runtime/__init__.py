"""Set-up layer under the loops: device and distributed start, config loading and checks, model
building and weights, dataset metadata, post-processing settings. Nothing here names a model."""
from .batch_norm import (StatisticsBlend, batch_norm_layers, freeze_statistics,  # noqa: F401
                         merge_rank_statistics, per_image_statistics, recompute_statistics)
from .config import build, load_config, model_class, paddleseg_log_level, postprocess_params  # noqa: F401
from .device import (all_sum, init_distributed, is_main_process, retain_freed_memory,  # noqa: F401
                     setup_device, synchronize)
from .metadata import check_num_classes, dataset_metadata  # noqa: F401
from .weights import build_model, load_weights, without_pretrained  # noqa: F401
