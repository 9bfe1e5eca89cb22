"""IRIS's wavelet latent: a one-level Haar DWT in front of the autoencoder and its inverse after it.

The seed (``../shared/seeds/001_*``) encodes ``HaarDWT(image)`` instead of the image, so the latent
keeps the frequency split (LL = structure, LH/HL/HH = detail) and the transform's factor 2 is
spatial compression for free. The orthonormal Haar transform is lossless and its own inverse up to
a transpose, so :func:`haar_idwt` undoes :func:`haar_dwt` to rounding, and an MSE in wavelet
space equals the MSE in pixels.

Written with ``pixel_unshuffle`` / ``pixel_shuffle`` and one 4x4 constant matrix, ops every
target lowers (no strided or grouped conv, no complex op).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderTiny
from diffusers.models.autoencoders.vae import DecoderOutput

# Rows: LL, LH (horizontal detail), HL (vertical detail), HH over a 2x2 block's pixels in
# pixel_unshuffle's order (top-left, top-right, bottom-left, bottom-right). Orthonormal and
# symmetric: it is its own inverse.
HAAR = torch.tensor([[1.0, 1.0, 1.0, 1.0],
                     [1.0, -1.0, 1.0, -1.0],
                     [1.0, 1.0, -1.0, -1.0],
                     [1.0, -1.0, -1.0, 1.0]]) / 2


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): the subbands LL, LH, HL, HH, each C channels."""
    b, c, h, w = x.shape
    blocks = F.pixel_unshuffle(x, 2).reshape(b, c, 4, h // 2, w // 2)  # (B, C, 4 pixels, h, w)
    bands = torch.einsum("kp,bcphw->bkchw", HAAR.to(x.dtype), blocks)  # (B, 4 bands, C, h, w)
    return bands.reshape(b, 4 * c, h // 2, w // 2)


def haar_idwt(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`: (B, 4C, h, w) -> (B, C, 2h, 2w)."""
    b, c4, h, w = y.shape
    bands = y.reshape(b, 4, c4 // 4, h, w)  # (B, 4 bands, C, h, w)
    blocks = torch.einsum("kp,bkchw->bcphw", HAAR.to(y.dtype), bands)  # (B, C, 4 pixels, h, w)
    return F.pixel_shuffle(blocks.reshape(b, c4, h, w), 2)


class WaveletAutoencoder(AutoencoderTiny):
    """An ``AutoencoderTiny`` on Haar subbands: ``encode`` takes images (B, 3, H, W) in [-1, 1],
    transforms them to (B, 12, H/2, W/2) and encodes those; ``decode`` returns images through the
    inverse transform. Built with ``in_channels = out_channels = 12`` (:func:`build_wavelet_autoencoder`);
    its downsampling factor is twice the inner autoencoder's. Everything else (config, saving,
    loading, latents, scaling) is diffusers' own."""

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        return super().encode(haar_dwt(x), return_dict)

    def decode(self, x: torch.Tensor, generator: torch.Generator | None = None, return_dict: bool = True):
        images = haar_idwt(super().decode(x).sample)
        return DecoderOutput(sample=images) if return_dict else (images,)
