"""What a model family declares once, so that trainers, exporters, passes, test vectors,
benchmarks and runtimes never name a denoiser class.

Every family's denoiser is a diffusers ``ModelMixin``/``ConfigMixin`` with one calling
convention, ``forward(z (B,C,S,S), t (B,) in [0, 1], class_labels (B,) int, recursions=None)
-> v (B,C,S,S)`` (the rectified-flow velocity ``noise - z0``); a family that carries state from
one step to the next (``Family.state``) adds ``state=None`` (a dict of tensors, None on the first
step) and returns ``(v, next_state)``, and ``carried_state(...)`` with the same arguments returns
``next_state`` alone (training's self-conditioning needs the state, not the velocity). Config fields
``latent_channels``, ``latent_size``, ``num_classes`` and ``class_names``. Class id
``num_classes`` is the null class of classifier-free guidance. The rest, which differs from
family to family, is a :class:`Family`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin

from ..errors import ConfigError, LRFError


def comma_ints(s: str) -> tuple[int, ...]:
    """An ``lrf-train`` flag's comma-separated integers (widths, depths per level)."""
    return tuple(int(x) for x in s.split(","))


def check_class_names(class_names, num_classes: int) -> None:
    """Refuse a config whose class names do not name every class once."""
    if class_names is not None and len(class_names) != num_classes:
        raise ConfigError(f"config: {len(class_names)} class_names for num_classes={num_classes}; give one name per class")


@dataclass(frozen=True)
class Family:
    """One model family: its denoiser class and everything the toolkit needs to know about it.

    - ``conditioning``: the inputs of a denoising step besides latent, t, dt and cfg (the
      bundle's plan declares them; ``class_id`` for every family so far);
    - ``state``: for a family whose denoiser carries tensors from one step to the next, the
      function giving their per-image shapes for a model (``{}``: this model carries none, e.g.
      MicroForge without its planner); samplers wrap such a denoiser in
      :class:`lrf_model.sampling.CarriedState`, and a bundle's step graph takes and returns them;
    - ``int8_module_types`` / ``int8_excluded`` / ``int8_float_within``: the modules INT8 may quantize,
      chosen by type (renaming a layer cannot silently turn quantization off), less named ones and
      every layer inside a module of a kept-float type (attention); ``int8_min_share``: the share
      of the step graph's weights an "int8" artifact must hold as int8 (the gate checks it);
    - ``recursive``: whether R (passes of shared weights) is chosen at call time, read from
      ``config.recursions`` / ``config.max_recursions``; otherwise R is 1. ``train_recursions``:
      the R values training draws from by default (``lrf-train --recursion-choices``);
    - ``train_groups``: named parts of the denoiser (by module type) that ``lrf-train --train-only``
      can train alone, the rest frozen (staged fine-tuning, e.g. LuminaRS's cross-attention stage);
    - ``loss_weight``: the family's own weight ``w(t)`` of the velocity loss (the seed's), which
      ``lrf-train`` uses unless ``--loss`` says otherwise;
    - ``add_arguments`` / ``config_from_args``: the family's architecture flags of ``lrf-train``;
    - ``tiny_config``: a small random model for tests.
    """

    name: str
    model_class: type
    description: str
    int8_module_types: tuple[type[torch.nn.Module], ...]
    int8_min_share: float
    add_arguments: Callable[[argparse._ArgumentGroup], None]
    config_from_args: Callable[[argparse.Namespace], dict]
    tiny_config: dict
    int8_excluded: tuple[str, ...] = ()  # module names (relative to the denoiser) kept float
    int8_float_within: tuple[type, ...] = ()  # module types whose layers all stay float (e.g. attention)
    recursive: bool = False
    train_recursions: tuple[int, ...] = ()
    conditioning: tuple[str, ...] = ("class_id",)
    state: Callable[[torch.nn.Module], dict[str, tuple[int, ...]]] | None = field(default=None, hash=False, compare=False)
    resume_keys: tuple[str, ...] = ()  # lrf-train flags a resumed run must keep
    train_groups: dict[str, tuple[type, ...]] = field(default_factory=dict, hash=False, compare=False)
    loss_weight: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, hash=False, compare=False)

    def build(self, **config) -> ModelMixin:
        return self.model_class(**config)

    def default_recursions(self, model: ConfigMixin) -> int:
        return int(model.config.recursions) if self.recursive else 1

    def max_recursions(self, model: ConfigMixin) -> int:
        return int(model.config.max_recursions) if self.recursive else 1

    def int8_candidates(self, model: torch.nn.Module) -> dict[str, torch.nn.Module]:
        """``{name: module}`` of the denoiser's modules of a type INT8 may quantize, outside the
        kept-float types, before the per-layer exclusions (what benchmarks/int8_sensitivity.py ranks)."""
        kept = {id(sub) for m in model.modules() if isinstance(m, self.int8_float_within) for sub in m.modules()}
        return {name: m for name, m in model.named_modules() if isinstance(m, self.int8_module_types) and id(m) not in kept}

    def int8_modules(self, model: torch.nn.Module) -> dict[str, torch.nn.Module]:
        """``{name: module}`` of the denoiser's modules that INT8 quantizes."""
        return {name: m for name, m in self.int8_candidates(model).items() if name not in self.int8_excluded}

    def check_train_group(self, group: str | None) -> None:
        """Refuse a ``--train-only`` group this family does not declare."""
        if group is not None and group not in self.train_groups:
            known = ", ".join(self.train_groups) or "none"
            raise LRFError(f"--train-only {group}: the {self.name} family has no such part (it has: {known})")

    def trainable(self, model: torch.nn.Module, group: str | None) -> list[torch.nn.Parameter]:
        """The parameters ``lrf-train --train-only group`` trains: all of them for None, else those
        inside the modules of the group's types (every other parameter is frozen)."""
        self.check_train_group(group)
        if group is None:
            return list(model.parameters())
        chosen = {id(p): p for m in model.modules() if isinstance(m, self.train_groups[group]) for p in m.parameters()}
        return list(chosen.values())

    def state_shapes(self, model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
        """``{name: per-image shape}`` of the tensors ``model`` carries between steps, sorted by name
        (the order every runtime stacks them in)."""
        return dict(sorted(self.state(model).items())) if self.state is not None else {}

    def describe(self, model: torch.nn.Module) -> dict:
        """What a bundle's manifest records about the family (and this model's carried state)."""
        return {"name": self.name, "conditioning": list(self.conditioning), "state": list(self.state_shapes(model)),
                "recursive": self.recursive, "int8_min_share": self.int8_min_share}
