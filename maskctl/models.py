"""Models: any timm model by name, the multi-head wrapper, and pretrained-weight loading.

Pretrained weights come from a local file (`--pretrained PATH`, .pth or .safetensors; the stored
classifier is dropped and re-made for our classes) or from the hub (`--pretrained hub`). When the
hub is out of reach the user is told how to pass a file: weights asked for are never silently
replaced by random ones.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskctl.errors import MaskctlError
from maskctl.data.transforms import decode_size_for
from maskctl.registry import MODELS, settings_taken


def _timm_kwargs(name: str, pretrained: str | None) -> dict[str, Any]:
    if not pretrained:
        return {"pretrained": False}
    if pretrained == "hub":
        return {"pretrained": True}
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(check_weights_file(pretrained))}}


def check_weights_file(pretrained: str) -> Path:
    path = Path(pretrained)
    if not path.is_file():
        raise MaskctlError(f"pretrained weights file not found: {path} (a .pth/.safetensors file, or 'hub')")
    if path.suffix.lower() not in {".pth", ".pt", ".bin", ".safetensors"}:
        raise MaskctlError(f"pretrained weights must be a .pth/.pt/.bin or .safetensors file, got {path.name}")
    return path


def create_timm(name: str, num_classes: int, pretrained: str | None = None, drop_rate: float = 0.0, **timm_args) -> nn.Module:
    """The timm door of the model registry (MODELS falls back to it for timm names); a recipe's
    model_args (e.g. drop_path_rate) go to timm.create_model as they are."""
    import timm

    from maskctl.engine.checkpoint import unreadable_reason
    from maskctl.hub import offline_unless_reachable

    hub = offline_unless_reachable() if pretrained == "hub" else contextlib.nullcontext()
    with hub as unreachable:
        try:
            return timm.create_model(name, num_classes=num_classes, drop_rate=drop_rate, **timm_args, **_timm_kwargs(name, pretrained))
        except MaskctlError:
            raise
        except TypeError as exc:
            if timm_args:  # timm passes unknown keywords on to the model class, which refuses them
                raise MaskctlError(f"model {name} does not take model_args {', '.join(timm_args)}: {exc}") from None
            raise
        except Exception as exc:  # hub errors come in many types (LocalEntryNotFoundError, OSError, HTTP errors)
            if pretrained == "hub":
                why = f"{unreachable}, and they are not in the local cache" if unreachable else f"the download failed ({type(exc).__name__})"
                raise MaskctlError(
                    f"could not get pretrained weights for {name} from the hub: {why}. "
                    f"Download the weights file where there is a network and pass --pretrained PATH/TO/model.safetensors"
                ) from None
            if pretrained:
                raise MaskctlError(f"cannot load pretrained weights {pretrained} into {name}: {unreadable_reason(exc)}") from None
            raise


def _timm_model_factory(name: str):
    import functools

    import timm

    # is_model, not list_models: list_models takes wildcards, and misses tags like resnet18.a1_in1k
    return functools.partial(create_timm, name) if timm.is_model(name) else None


def _timm_model_names() -> list[str]:
    import timm

    return timm.list_models()


MODELS.set_fallback(_timm_model_factory, _timm_model_names, ", or any timm model name (`maskctl list models`)")


class MultiHead(nn.Module):
    """A shared timm backbone with mask (3), gender (2) and age (3) heads.

    `forward` returns the 18-class log-probabilities composed from the heads
    (log p(mask) + log p(gender) + log p(age)), so cross-entropy on it is the sum of the three
    task cross-entropies and every 18-class tool (metrics, predict, ensemble) works unchanged.
    """

    task_sizes = (3, 2, 3)

    def __init__(self, backbone: str, pretrained: str | None = None, drop_rate: float = 0.0):
        super().__init__()
        self.backbone = MODELS.create(backbone, num_classes=0, pretrained=pretrained, drop_rate=drop_rate)
        features = self.backbone.num_features
        self.heads = nn.ModuleList([nn.Linear(features, size) for size in self.task_sizes])

    def forward(self, x, tasks: bool = False):
        """`tasks=True` gives the three heads' logits (the multitask loss); a keyword rather
        than a second method so that DistributedDataParallel's forward hooks still run."""
        features = self.backbone(x)
        task_logits = tuple(head(features) for head in self.heads)
        return task_logits if tasks else compose_task_logits(*task_logits)

    # timm's split of forward, so Grad-CAM (maskctl/explain.py) reaches the backbone's feature map
    def forward_features(self, x):
        return self.backbone.forward_features(x)

    def forward_head(self, feature_map):
        pooled = self.backbone.forward_head(feature_map)
        return compose_task_logits(*(head(pooled) for head in self.heads))


def compose_task_logits(mask_logits, gender_logits, age_logits):
    """(N,3), (N,2), (N,3) -> (N,18) log-probabilities in class order mask*6 + gender*3 + age."""
    lm = torch.log_softmax(mask_logits.float(), 1)[:, :, None, None]
    lg = torch.log_softmax(gender_logits.float(), 1)[:, None, :, None]
    la = torch.log_softmax(age_logits.float(), 1)[:, None, None, :]
    return (lm + lg + la).reshape(mask_logits.shape[0], 18)


@MODELS.register("multihead", "shared timm backbone (--backbone) with mask/gender/age heads, 18 classes composed")
def multihead(num_classes: int = 18, backbone: str = "efficientnet_b0", pretrained: str | None = None, drop_rate: float = 0.0):
    if num_classes != 18:
        raise MaskctlError(f"the multihead model predicts the 18 mask classes, not {num_classes}")
    return MultiHead(backbone, pretrained, drop_rate)


def build_model(name: str, num_classes: int, backbone: str = "efficientnet_b0", pretrained: str | None = None, drop_rate: float = 0.0,
                **model_args) -> nn.Module:
    """`backbone`, `pretrained` and `drop_rate` go to the factories that name them (a timm model
    has no backbone); a recipe's `model_args` as they are (checked by component_args first)."""
    factory = MODELS.get(name)
    common = {"backbone": backbone, "pretrained": pretrained, "drop_rate": drop_rate}
    named = settings_taken(factory).names
    return factory(num_classes=num_classes, **{k: v for k, v in common.items() if k in named}, **model_args)


def model_meta(config, num_classes: int, class_names: list[str], mask_classes: bool) -> dict[str, Any]:
    """What predict needs to rebuild the network from a checkpoint alone (plain types only,
    so the checkpoint loads with weights_only=True)."""
    return {
        "model": config.model,
        "backbone": config.backbone,
        "num_classes": int(num_classes),
        "class_names": list(class_names),
        "size": list(config.image_hw()),
        "decode_size": list(decode_size_for(config.augmentation, config.image_hw())),
        **({"crop": list(config.image_crop())} if config.image_crop() else {}),  # absent: the whole photo
        "dataset": config.dataset,
        "mask_classes": mask_classes,
        "age_edges": config.age_edges,
        "model_args": dict(config.model_args),
    }


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    return build_model(meta["model"], meta["num_classes"], meta.get("backbone", "efficientnet_b0"), **meta.get("model_args", {}))
