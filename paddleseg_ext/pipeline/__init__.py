"""The inference pipeline: preprocess -> network (+TTA) -> original size -> post-processing."""
from .predictor import InferenceModel, Predictor, build_predictor, preprocess, valid_region  # noqa: F401
from .static_predictor import (DeployedModel, OnnxPredictor, StaticPredictor, default_backend,  # noqa: F401
                               load_deployed, read_deploy_info)
