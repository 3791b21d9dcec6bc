"""Model registry, sources (built-in, torchvision, timm, local checkpoints) and head surgery."""

from edgeslim.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
