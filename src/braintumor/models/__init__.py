"""Models: a registry of architectures, ImageNet weights, and self-describing checkpoints.

Importing this package registers every architecture (one module per family). Make models only with
`create_model`; save them with `save_checkpoint` and rebuild them with `load_model`.
"""

from braintumor.models import efficientnet, efficientnet_lite, mobilenet, resnet, simple_cnn, vgg_bn  # noqa: F401
from braintumor.models.checkpoint import (
    CheckpointError,
    LoadedModel,
    checkpoint_paths,
    load_model,
    read_metadata,
    save_checkpoint,
    update_metadata,
)
from braintumor.models.pretrained import PretrainedWeightsUnavailable
from braintumor.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelInfo,
    arch_of,
    create_model,
    gradcam_layer,
    list_models,
    model_info,
    register_model,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CheckpointError",
    "LoadedModel",
    "ModelInfo",
    "PretrainedWeightsUnavailable",
    "arch_of",
    "checkpoint_paths",
    "create_model",
    "gradcam_layer",
    "list_models",
    "load_model",
    "model_info",
    "read_metadata",
    "register_model",
    "save_checkpoint",
    "update_metadata",
]
