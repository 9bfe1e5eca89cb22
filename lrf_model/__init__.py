"""LRF reference model: denoiser, autoencoder, sampler, pipeline, training."""

from .logs import silence_known_warnings

silence_known_warnings()  # before anything imports diffusers/torchao
