"""The frozen autoencoder: diffusers' ``AutoencoderTiny`` (the TAESD architecture), its
``AutoencoderKL`` (the Stable Diffusion / FLUX VAE family) for a model trained on one, or its
``AutoencoderDC`` (DC-AE: deep compression through space-to-channel residual shortcuts; MicroForge's).

We never re-implement either. This module only
- builds an ``AutoencoderTiny`` of a chosen downsampling factor, width and latent channels
  (the shipped 32px model uses f=4: 32x32x3 -> 8x8x4), and an ``AutoencoderKL`` of a given size
  (:func:`build_kl_autoencoder`: the seed systems' ~83M VAEs), and an ``AutoencoderDC``
  (:func:`build_dc_autoencoder`: MicroForge's, f=4/8 on CIFAR-10, f=32 at its published size);
- builds IRIS's wavelet autoencoder (``wavelet=True``: a Haar DWT around an ``AutoencoderTiny``,
  :mod:`lrf_model.wavelet`);
- loads any of them from a diffusers folder (its ``config.json`` names the class);
- loads real TAESD weights, from a hub id or from the raw
  ``taesd_encoder.pth`` / ``taesd_decoder.pth`` files (mapping rules in
  ``../shared/weights/taesd/SOURCE.md``), and writes raw files back (for tests and users
  moving between the two formats).

Latent scaling follows diffusers: the denoiser sees ``(latents - shift_factor) * scaling_factor``,
both stored in the autoencoder's own config (a DC-AE's has no shift: its latents are only scaled).
Encoding is deterministic for all (a KL VAE's posterior mode), so the pipeline and every bundle's ``encoder`` graph give the same latent.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import json

from diffusers import AutoencoderDC, AutoencoderKL, AutoencoderTiny

from .data import from_pixels
from .errors import ConfigError, LRFError, first_line
from .wavelet import WaveletAutoencoder

TAESD_HUB_ID = "madebyollin/taesd"
# The autoencoder classes a checkpoint may hold, by the ``_class_name`` diffusers writes.
AUTOENCODER_CLASSES = {"AutoencoderTiny": AutoencoderTiny, "AutoencoderKL": AutoencoderKL,
                       "AutoencoderDC": AutoencoderDC, "WaveletAutoencoder": WaveletAutoencoder}
Autoencoder = AutoencoderTiny | AutoencoderKL | AutoencoderDC


def build_autoencoder(downsample: int = 4, latent_channels: int = 4, channels: int = 64,
                      decoder_channels: int | None = None, wavelet: bool = False) -> AutoencoderTiny:
    """An untrained ``AutoencoderTiny`` with downsampling factor ``downsample`` (a power of 2).

    TAESD itself is ``downsample=8, channels=64``: blocks (1,3,3,3) / (3,3,3,1).
    Each extra factor of 2 adds one stride-2 stage of 3 blocks. ``decoder_channels`` (default:
    ``channels``) sets the decoder apart: it runs once per generated image on the phone, while
    the encoder runs only for editing, so the encoder can afford to be wider. ``wavelet``: IRIS's
    :class:`~lrf_model.wavelet.WaveletAutoencoder`, whose Haar transform is the first factor of 2.
    """
    decoder_channels = channels if decoder_channels is None else decoder_channels
    if downsample < 2 or downsample & (downsample - 1) or (wavelet and downsample < 4):
        raise ConfigError(f"downsample={downsample} is invalid; use a power of two >= 2 (TAESD uses 8), >= 4 with the "
                          "wavelet transform (which is the first factor of 2)")
    if latent_channels < 1:
        raise ConfigError(f"latent_channels={latent_channels} is invalid; use a positive count (TAESD uses 4)")
    if channels < 1 or decoder_channels < 1:
        raise ConfigError(f"channels={channels}/{decoder_channels} is invalid; use a positive width (TAESD uses 64)")
    stages = int(math.log2(downsample // 2 if wavelet else downsample)) + 1
    cls, image_channels = (WaveletAutoencoder, 12) if wavelet else (AutoencoderTiny, 3)
    return cls(
        in_channels=image_channels,
        out_channels=image_channels,
        encoder_block_out_channels=(channels,) * stages,
        decoder_block_out_channels=(decoder_channels,) * stages,
        num_encoder_blocks=(1,) + (3,) * (stages - 1),
        num_decoder_blocks=(3,) * (stages - 1) + (1,),
        latent_channels=latent_channels,
    )


def build_kl_autoencoder(latent_channels: int = 16, block_out_channels: tuple[int, ...] = (128, 256, 512, 512),
                         layers_per_block: int = 2) -> AutoencoderKL:
    """An untrained ``AutoencoderKL``; the defaults are Stable Diffusion's VAE (f=8, 83.7M parameters)
    with 16 latent channels, the size LuminaRS and IRIS name for their frozen VAEs."""
    if latent_channels < 1 or not block_out_channels or min(block_out_channels) < 1 or layers_per_block < 1:
        raise ConfigError(f"AutoencoderKL({latent_channels}, {block_out_channels}, {layers_per_block}): use positive sizes")
    n = len(block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels,
                         block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n)


def build_dc_autoencoder(downsample: int = 4, latent_channels: int = 16, channels: int = 32,
                         layers_per_block: int = 2, widths: tuple[int, ...] | None = None) -> AutoencoderDC:
    """An untrained ``AutoencoderDC`` of ``log2(downsample) + 1`` stages whose widths double from
    ``channels`` (or are ``widths``, whose length sets the factor: MicroForge's published DC-AE is
    f=32 over (32, 64, 128, 128, 256, 256), 17.0M, the seed's "tiny [32,64,128,256], 16M"); every
    stride is a pixel (un)shuffle with DC-AE's space-to-channel residual shortcut, and the latent
    in/out shortcuts are on. ResBlocks at every stage: DC-AE's EfficientViT (linear attention)
    stages serve its f=32-128 latents of large images, while ResBlocks keep the graph in the ops
    every target runs. The decoder's norm is DC-AE's RMSNorm."""
    if widths is not None:
        downsample = 2 ** (len(widths) - 1)
    if downsample < 2 or downsample & (downsample - 1):
        raise ConfigError(f"downsample={downsample} is invalid; use a power of two >= 2 (DC-AE uses 32)")
    widths = tuple(widths) if widths is not None else tuple(channels * 2**i for i in range(int(math.log2(downsample)) + 1))
    if latent_channels < 1 or min(widths) < 1 or layers_per_block < 1:
        raise ConfigError(f"AutoencoderDC({latent_channels} latent channels, widths {widths}, {layers_per_block} layers): "
                          "use positive sizes")
    stages = len(widths)
    return AutoencoderDC(in_channels=3, latent_channels=latent_channels, encoder_block_types="ResBlock",
                         decoder_block_types="ResBlock", encoder_block_out_channels=widths,
                         decoder_block_out_channels=widths, encoder_layers_per_block=(layers_per_block,) * stages,
                         decoder_layers_per_block=(layers_per_block,) * stages,
                         encoder_qkv_multiscales=((),) * stages, decoder_qkv_multiscales=((),) * stages,
                         decoder_norm_types="rms_norm", decoder_act_fns="silu")


def downsample_factor(ae: Autoencoder) -> int:
    """Spatial downsampling factor (2 ** number of stride-2 stages)."""
    stages = (ae.config.encoder_block_out_channels if isinstance(ae, (AutoencoderTiny, AutoencoderDC))
              else ae.config.block_out_channels)
    return 2 ** (len(stages) - 1) * (2 if isinstance(ae, WaveletAutoencoder) else 1)


def encoded(ae: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> raw (unscaled) latents: TAESD's or DC-AE's latents, a KL VAE's posterior mode."""
    out = ae.encode(x)
    if isinstance(ae, AutoencoderTiny):
        return out.latents
    return out.latent if isinstance(ae, AutoencoderDC) else out.latent_dist.mode()


def load_autoencoder(source: str | Path) -> Autoencoder:
    """Load an autoencoder from a diffusers folder (``AutoencoderTiny`` or ``AutoencoderKL``, as its
    config names), a hub id (TAESD-style), or a folder of raw TAESD files."""
    path = Path(source)
    if path.is_dir() and (path / "taesd_encoder.pth").is_file():
        return load_taesd_raw(path / "taesd_encoder.pth", path / "taesd_decoder.pth")
    if path.is_dir() and not (path / "config.json").is_file():
        raise LRFError(f"{path} is not an autoencoder folder: it has neither config.json nor taesd_encoder.pth")
    if not path.exists() and (str(source).startswith((".", "/")) or str(source).count("/") != 1):
        raise LRFError(f"autoencoder not found at {source}; pass a diffusers folder, a raw TAESD folder or a hub id")
    cls = AutoencoderTiny
    if path.is_dir():
        try:
            name = json.loads((path / "config.json").read_text()).get("_class_name", "AutoencoderTiny")
        except (OSError, ValueError, AttributeError):
            raise LRFError(f"{path / 'config.json'} is not a JSON object; re-save the autoencoder") from None
        if name not in AUTOENCODER_CLASSES:
            raise LRFError(f"{path}: autoencoder class {name!r} is not supported; use one of {sorted(AUTOENCODER_CLASSES)}")
        cls = AUTOENCODER_CLASSES[name]
    try:
        ae = cls.from_pretrained(str(source), low_cpu_mem_usage=False)  # no accelerate needed
    except (OSError, ValueError, RuntimeError) as e:
        first = first_line(e)
        raise LRFError(f"cannot load autoencoder from {source}: {first}") from None
    return ae.eval().requires_grad_(False)


# --- raw TAESD (.pth) <-> diffusers key mapping -------------------------------------------

_KEY = re.compile(r"^(\d+)\.(.+)$")


def _remap(state: dict[str, torch.Tensor], prefix: str, offset: int) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        m = _KEY.match(key)
        if m is None:
            raise LRFError(f"unexpected key '{key}' in a raw TAESD file; expected 'N.weight'-style keys")
        out[f"{prefix}.layers.{int(m.group(1)) + offset}.{m.group(2)}"] = value
    return out


def taesd_raw_to_diffusers(encoder: dict[str, torch.Tensor], decoder: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Raw TAESD state dicts -> one ``AutoencoderTiny`` state dict.

    The decoder's raw index 0 is the parameter-free tanh clamp, which diffusers applies in
    ``forward``; hence ``raw N -> decoder.layers.(N-1)``.
    """
    return {**_remap(encoder, "encoder", 0), **_remap(decoder, "decoder", -1)}


def diffusers_to_taesd_raw(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Inverse of :func:`taesd_raw_to_diffusers`: ``(encoder_state, decoder_state)``."""
    enc, dec = {}, {}
    for key, value in state.items():
        part, _, idx, rest = key.split(".", 3)
        if part == "encoder":
            enc[f"{int(idx)}.{rest}"] = value
        elif part == "decoder":
            dec[f"{int(idx) + 1}.{rest}"] = value
    return enc, dec


def _read_raw(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise LRFError(f"missing raw TAESD file {path}; need both taesd_encoder.pth and taesd_decoder.pth")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise LRFError(f"cannot read {path}: {type(e).__name__}; re-download the file") from None
    if not isinstance(state, dict):
        raise LRFError(f"{path} does not hold a state dict")
    return state


def load_taesd_raw(encoder_path: str | Path, decoder_path: str | Path) -> AutoencoderTiny:
    """Load raw ``taesd_encoder.pth`` / ``taesd_decoder.pth`` into diffusers' ``AutoencoderTiny``.

    The architecture (latent channels, depth) is inferred from the tensors, so TAESD
    variants with other latent channel counts load too.
    """
    enc, dec = _read_raw(Path(encoder_path)), _read_raw(Path(decoder_path))
    state = taesd_raw_to_diffusers(enc, dec)
    latent_channels = state[max((k for k in state if k.startswith("encoder.layers.") and k.endswith(".weight")),
                                key=lambda k: int(k.split(".")[2]))].shape[0]
    # Stride-2 convs are the top-level convs without a bias (SOURCE.md: raw 2, 6, 10).
    strided = sum(1 for k in enc if k.count(".") == 1 and k.endswith(".weight") and f"{k.split('.')[0]}.bias" not in enc)
    channels, decoder_channels = state["encoder.layers.0.weight"].shape[0], state["decoder.layers.0.weight"].shape[0]
    ae = build_autoencoder(downsample=2**strided, latent_channels=latent_channels, channels=channels,
                           decoder_channels=decoder_channels)
    try:
        ae.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise LRFError(f"raw TAESD files do not match the TAESD architecture: {str(e).splitlines()[0]}") from None
    return ae.eval().requires_grad_(False)


def save_taesd_raw(ae: AutoencoderTiny, folder: str | Path) -> None:
    """Write ``taesd_encoder.pth`` / ``taesd_decoder.pth`` in the raw TAESD format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    enc, dec = diffusers_to_taesd_raw(ae.state_dict())
    torch.save(enc, folder / "taesd_encoder.pth")
    torch.save(dec, folder / "taesd_decoder.pth")


@torch.no_grad()
def decoder_flops(ae: Autoencoder, image_side: int = 32) -> int:
    """FLOPs (matmuls and convolutions, torch.utils.flop_counter) of decoding one image: what a
    phone pays per generated image on top of the denoising steps."""
    from torch.utils.flop_counter import FlopCounterMode

    side = image_side // downsample_factor(ae)
    counter = FlopCounterMode(display=False)
    with counter:
        ae.decode(torch.zeros(1, ae.config.latent_channels, side, side))
    return int(counter.get_total_flops())


def latent_scaling(ae: Autoencoder) -> tuple[float, float]:
    """``(scaling_factor, shift_factor)`` of the model space; a KL VAE's shift may be None, a DC-AE has none."""
    return float(ae.config.scaling_factor), float(ae.config.get("shift_factor") or 0.0)


def to_model_space(ae: Autoencoder, latents: torch.Tensor) -> torch.Tensor:
    """Autoencoder latents -> the scaled space the denoiser works in."""
    scale, shift = latent_scaling(ae)
    return (latents - shift) * scale


def from_model_space(ae: Autoencoder, z: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_model_space`."""
    scale, shift = latent_scaling(ae)
    return z / scale + shift


def encode_pixels(ae: Autoencoder, pixels: torch.Tensor) -> torch.Tensor:
    """8-bit RGB (B, H, W, 3) -> model-space latents (B, C, H/f, W/f): what editing starts from,
    the same function in the pipeline and in every bundle's ``encoder`` graph."""
    return to_model_space(ae, encoded(ae, from_pixels(pixels, ae.dtype)))
