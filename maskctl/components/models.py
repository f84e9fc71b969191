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

from maskctl.core.errors import MaskctlError
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

    from maskctl.core.hub import offline_unless_reachable
    from maskctl.core.schema import unreadable_reason

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


AGE_HEADS = ("bands", "ordinal")
# The ordinal age head's cut points: P(age >= t) for every whole age t from 19 to 60 (the real
# data's ages run 18..60), so any band edges in that range are read off the same head.
ORDINAL_AGES = tuple(range(19, 61))


class OrdinalAgeHead(nn.Module):
    """P(age >= t) for each cut point t, as in CORAL: one shared age score plus a bias per cut, so
    the cuts stay in order. It learns from the exact ages the labels carry (58 is nearer 60 than
    40 is), which a 3-band head throws away."""

    def __init__(self, features: int, cut_ages=ORDINAL_AGES):
        super().__init__()
        self.score = nn.Linear(features, 1, bias=False)
        # Cuts start in order, from "almost everyone is older" to "almost nobody is"
        self.bias = nn.Parameter(torch.linspace(2.0, -2.0, len(cut_ages)))

    def forward(self, features):
        return self.score(features) + self.bias  # (N, cuts) logits of age >= t


class MultiHead(nn.Module):
    """A shared timm backbone with mask (3), gender (2) and age heads: three age bands, or with
    `age_head="ordinal"` P(age >= t) for every whole age t (OrdinalAgeHead), read at the run's edges.

    `forward` returns the 18-class log-probabilities composed from the heads
    (log p(mask) + log p(gender) + log p(age)), so cross-entropy on it is the sum of the three
    task cross-entropies and every 18-class tool (metrics, predict, ensemble) works unchanged.
    """

    task_sizes = (3, 2, 3)

    def __init__(self, backbone: str, pretrained: str | None = None, drop_rate: float = 0.0, age_head: str = "bands", age_edges: str = "30,60"):
        super().__init__()
        from maskctl.data.labels import parse_age_edges

        if age_head not in AGE_HEADS:
            raise MaskctlError(f"model_args: age_head must be one of {', '.join(AGE_HEADS)}, got {str(age_head)[:40]!r}")
        self.age_head = age_head
        self.backbone = MODELS.create(backbone, num_classes=0, pretrained=pretrained, drop_rate=drop_rate)
        features = self.backbone.num_features
        if age_head == "ordinal":
            edges = parse_age_edges(age_edges)
            if not all(edge in ORDINAL_AGES for edge in edges):
                raise MaskctlError(f"the ordinal age head cuts at ages {ORDINAL_AGES[0]}..{ORDINAL_AGES[-1]}; age edges {age_edges} are outside")
            self.edge_cuts = tuple(ORDINAL_AGES.index(edge) for edge in edges)
            age = OrdinalAgeHead(features)
        else:
            age = nn.Linear(features, 3)
        self.heads = nn.ModuleList([nn.Linear(features, 3), nn.Linear(features, 2), age])

    def forward(self, x, tasks: bool = False):
        """`tasks=True` gives the three heads' logits (the multitask loss); a keyword rather
        than a second method so that DistributedDataParallel's forward hooks still run."""
        features = self.backbone(x)
        task_logits = tuple(head(features) for head in self.heads)
        return task_logits if tasks else self.compose(task_logits)

    def compose(self, task_logits):
        mask_logits, gender_logits, age_logits = task_logits
        if self.age_head == "ordinal":
            age_logits = ordinal_band_log_probs(age_logits, self.edge_cuts)
        return compose_task_logits(mask_logits, gender_logits, age_logits)

    def soft_targets(self, targets):
        """(N, 4) mask, gender, age band, exact age -> what each head is taught: one-hot
        mask and gender, and one-hot bands or, for the ordinal head, [age >= t] per cut."""
        from maskctl.data.transforms import one_hot

        age = cumulative_age_targets(targets[:, 3]) if self.age_head == "ordinal" else one_hot(targets[:, 2], 3)
        return one_hot(targets[:, 0], 3), one_hot(targets[:, 1], 2), age

    # timm's split of forward, so Grad-CAM (maskctl/commands/explain.py) reaches the backbone's feature map
    def forward_features(self, x):
        return self.backbone.forward_features(x)

    def forward_head(self, feature_map):
        pooled = self.backbone.forward_head(feature_map)
        return self.compose(tuple(head(pooled) for head in self.heads))


def cumulative_age_targets(ages):
    """(N,) exact ages -> (N, cuts) floats [age >= t] for the ordinal head's cut points."""
    cuts = torch.tensor(ORDINAL_AGES, device=ages.device)
    return (ages[:, None] >= cuts[None, :]).float()


def ordinal_band_log_probs(cut_logits, edge_cuts: tuple[int, int]):
    """(N, cuts) logits of age >= t -> (N, 3) log-probabilities of the bands the edges make.
    The middle band is what lies between the two cuts, kept above a floor: nothing forces an
    untrained head's cuts into order."""
    older_young, older_old = (torch.sigmoid(cut_logits[:, cut].float()) for cut in edge_cuts)
    middle = (older_young - older_old).clamp(min=1e-6)
    bands = torch.stack([(1 - older_young).clamp(min=1e-6), middle, older_old.clamp(min=1e-6)], 1)
    return torch.log(bands / bands.sum(1, keepdim=True))


def compose_task_logits(mask_logits, gender_logits, age_logits):
    """(N,3), (N,2), (N,3) -> (N,18) log-probabilities in class order mask*6 + gender*3 + age."""
    lm = torch.log_softmax(mask_logits.float(), 1)[:, :, None, None]
    lg = torch.log_softmax(gender_logits.float(), 1)[:, None, :, None]
    la = torch.log_softmax(age_logits.float(), 1)[:, None, None, :]
    return (lm + lg + la).reshape(mask_logits.shape[0], 18)


@MODELS.register("multihead", "shared timm backbone (--backbone) with mask/gender/age heads, 18 classes composed; "
                              "model_args age_head: bands or ordinal (learns the exact age, cut at the age edges)")
def multihead(num_classes: int = 18, backbone: str = "efficientnet_b0", pretrained: str | None = None, drop_rate: float = 0.0,
              age_head: str = "bands", age_edges: str = "30,60"):
    if num_classes != 18:
        raise MaskctlError(f"the multihead model predicts the 18 mask classes, not {num_classes}")
    return MultiHead(backbone, pretrained, drop_rate, age_head, age_edges)


def build_model(name: str, num_classes: int, backbone: str = "efficientnet_b0", pretrained: str | None = None, drop_rate: float = 0.0,
                age_edges: str = "30,60", **model_args) -> nn.Module:
    """`backbone`, `pretrained`, `drop_rate` and the run's `age_edges` go to the factories that
    name them (a timm model has no backbone); a recipe's `model_args` as they are (checked by
    component_args first)."""
    factory = MODELS.get(name)
    common = {"backbone": backbone, "pretrained": pretrained, "drop_rate": drop_rate, "age_edges": age_edges}
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
    return build_model(meta["model"], meta["num_classes"], meta.get("backbone", "efficientnet_b0"), age_edges=meta.get("age_edges", "30,60"),
                       **meta.get("model_args", {}))
