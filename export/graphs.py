"""The graphs every exporter consumes, built from the reference modules (never re-written).

``GuidedStepGraph`` is the ``--graph step`` unit: one classifier-free-guided Euler step,
``(latent, t, dt, class_id, cfg) -> next latent``, with the recursion count fixed at
construction so tracing unrolls it. It calls :func:`lrf_model.sampling.guided_step`, the same
function the PyTorch sampler uses, so the exported arithmetic cannot drift from the reference.
"""

from __future__ import annotations

import torch

from lrf_model.model import LRFDenoiser
from lrf_model.sampling import guided_step


class GuidedStepGraph(torch.nn.Module):
    def __init__(self, denoiser: LRFDenoiser, recursions: int):
        super().__init__()
        self.denoiser = denoiser
        self.recursions = recursions
        self.null_class = denoiser.config.num_classes

    def forward(self, latent: torch.Tensor, t: torch.Tensor, dt: torch.Tensor, class_id: torch.Tensor,
                cfg: torch.Tensor) -> torch.Tensor:
        return guided_step(self.denoiser, latent, t, dt, class_id, self.null_class, cfg, self.recursions)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        c = self.denoiser.config
        return (torch.randn(batch, c.latent_channels, c.latent_size, c.latent_size), torch.full((batch,), 0.75),
                torch.full((batch,), 0.25), torch.zeros(batch, dtype=torch.long), torch.full((batch,), 3.0))
