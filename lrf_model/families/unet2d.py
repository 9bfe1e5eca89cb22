"""Family ``unet2d``: diffusers' ``UNet2DModel`` with class embeddings, the architecture of
DDPM's CIFAR-10 model (ResNet blocks, self-attention at the coarser level, sinusoidal time
embedding) at a small config, as a rectified-flow velocity model on the latent grid.

The UNet is used as diffusers ships it; this file only fixes the conventions every family
shares: ``t`` in [0, 1] is fed as the timestep ``1000 t`` (the range its sinusoidal embedding
was designed for), class id ``num_classes`` is the null class of classifier-free guidance (one
more embedding row), and the output is the velocity. No recursion: R is 1.
"""

from __future__ import annotations

import argparse

import torch
from diffusers import UNet2DModel
from diffusers.models.attention_processor import Attention
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from ..errors import ConfigError
from .base import Family, check_class_names, comma_ints


class UNet2DDenoiser(ModelMixin, ConfigMixin):
    """``forward(z (B,C,S,S), t (B,), class_labels (B,), recursions=None) -> v (B,C,S,S)``."""

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        latent_size: int = 8,
        num_classes: int = 10,
        class_names: list[str] | None = None,
        block_out_channels: tuple[int, ...] = (64, 128),
        attention_levels: tuple[bool, ...] = (False, True),
        layers_per_block: int = 1,
        norm_num_groups: int = 32,
        attention_head_dim: int = 32,
    ):
        super().__init__()
        _validate(latent_size, num_classes, class_names, tuple(block_out_channels), tuple(attention_levels),
                  layers_per_block, norm_num_groups)
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention_levels)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention_levels))
        self.unet = UNet2DModel(sample_size=latent_size, in_channels=latent_channels, out_channels=latent_channels,
                                block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                                down_block_types=down, up_block_types=up, num_class_embeds=num_classes + 1,
                                norm_num_groups=norm_num_groups, attention_head_dim=attention_head_dim)

    def forward(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor,
                recursions: int | None = None) -> torch.Tensor:
        if recursions not in (None, 1):
            raise ConfigError(f"recursions={recursions}: the unet2d family has no recursion; use 1")
        return self.unet(z, t * 1000.0, class_labels=class_labels).sample


def _validate(latent_size: int, num_classes: int, class_names, channels: tuple[int, ...], attention: tuple[bool, ...],
              layers_per_block: int, groups: int) -> None:
    if len(channels) != len(attention) or not channels:
        raise ConfigError(f"config: block_out_channels {channels} and attention_levels {attention} need the same "
                          "non-zero length (one entry per resolution level)")
    if any(c % groups for c in channels):
        raise ConfigError(f"config: every block_out_channels entry {channels} must be divisible by norm_num_groups={groups}")
    if latent_size % (2 ** (len(channels) - 1)):
        raise ConfigError(f"config: latent_size {latent_size} cannot be halved {len(channels) - 1} times; "
                          "use fewer levels or a larger latent")
    if layers_per_block < 1 or num_classes < 1:
        raise ConfigError("config: layers_per_block and num_classes must be positive")
    check_class_names(class_names, num_classes)


def _add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--block-out-channels", type=comma_ints, default=(64, 128), help="UNet width per level (comma-separated)")
    g.add_argument("--attention-levels", type=lambda s: tuple(x.strip() == "1" for x in s.split(",")), default=(False, True),
                   help="self-attention per level, 0/1 (comma-separated)")
    g.add_argument("--layers-per-block", type=int, default=1)


def _config_from_args(args: argparse.Namespace) -> dict:
    return dict(block_out_channels=args.block_out_channels, attention_levels=args.attention_levels,
                layers_per_block=args.layers_per_block)


UNET2D = Family(
    name="unet2d",
    model_class=UNet2DDenoiser,
    description="diffusers UNet2DModel with class embeddings (DDPM's CIFAR-10 architecture, small)",
    # Convs and linears of the ResNet blocks and the time embedding. The latent-wide first and last
    # convs stay float, as LRF's input embedding and output projection do, and so do the attention
    # projections (9% of the shipped model's weights), whose error guidance amplifies. The other
    # float layers are the most sensitive by benchmarks/int8_sensitivity.py (each quantized alone,
    # 4-step trajectories at cfg 3 against float, per weight): the skip paths' 1x1 shortcuts, which
    # read the concatenation of two differently scaled feature maps (Q-Diffusion's finding), the
    # full-resolution level's last convs and time projection, and the first downsampler. On 20
    # trajectories of the shipped model the worst step error went from 5.3e-2 (median 4.2e-2; the
    # gate's one trajectory 3.9e-2 on an AVX-512 CPU, 5.6e-2 on CI's machine) to 2.8e-2 (median 2.2e-2),
    # for 7% of the weights kept float (int8 share 0.90 -> 0.83; the tiny test config keeps 0.77).
    int8_module_types=(torch.nn.Linear, torch.nn.Conv2d),
    int8_excluded=("unet.conv_in", "unet.conv_out",
                   "unet.down_blocks.0.downsamplers.0.conv", "unet.down_blocks.0.resnets.0.conv2",
                   "unet.down_blocks.1.resnets.0.conv_shortcut",
                   "unet.up_blocks.1.resnets.0.conv_shortcut", "unet.up_blocks.1.resnets.1.conv_shortcut",
                   "unet.up_blocks.1.resnets.0.conv2", "unet.up_blocks.1.resnets.1.conv2",
                   "unet.up_blocks.1.resnets.1.time_emb_proj"),
    int8_float_within=(Attention,),
    int8_min_share=0.75,
    add_arguments=_add_arguments,
    config_from_args=_config_from_args,
    tiny_config=dict(block_out_channels=(32, 32), attention_levels=(False, True), norm_num_groups=8, attention_head_dim=8),
    resume_keys=("block_out_channels", "attention_levels", "layers_per_block"),
)
