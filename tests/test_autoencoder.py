"""TAESD loading: raw .pth files written here from an independent nn.Sequential TAESD; a KL VAE
(``AutoencoderKL``) through the pipeline and an exported bundle."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from lrf_export.exporter import ExportOptions, export_bundles
from lrf_export.run import BundleRuntime
from lrf_model.autoencoder import (build_autoencoder, build_dc_autoencoder, build_kl_autoencoder, downsample_factor, encode_pixels, load_autoencoder,
                                   load_taesd_raw, save_taesd_raw)
from lrf_model.classes import CIFAR10_CLASSES
from lrf_model.errors import ConfigError, LRFError
from lrf_model.families import FAMILIES
from lrf_model.pipeline import LRFPipeline

from .conftest import TEST_STD, randomize, tiny_family_denoiser


# The raw TAESD architecture, as madebyollin/taesd writes it (plain nn.Sequential).
class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class RawBlock(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(n_in, n_out, 3, padding=1), nn.ReLU(), nn.Conv2d(n_out, n_out, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(n_out, n_out, 3, padding=1))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def raw_encoder(c=64, lat=4):
    def conv(i, o, **kw):
        return nn.Conv2d(i, o, 3, padding=1, **kw)
    return nn.Sequential(conv(3, c), RawBlock(c, c),
                         conv(c, c, stride=2, bias=False), RawBlock(c, c), RawBlock(c, c), RawBlock(c, c),
                         conv(c, c, stride=2, bias=False), RawBlock(c, c), RawBlock(c, c), RawBlock(c, c),
                         conv(c, c, stride=2, bias=False), RawBlock(c, c), RawBlock(c, c), RawBlock(c, c),
                         conv(c, lat))


def raw_decoder(c=64, lat=4):
    def conv(i, o, **kw):
        return nn.Conv2d(i, o, 3, padding=1, **kw)
    return nn.Sequential(Clamp(), conv(lat, c), nn.ReLU(),
                         RawBlock(c, c), RawBlock(c, c), RawBlock(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
                         RawBlock(c, c), RawBlock(c, c), RawBlock(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
                         RawBlock(c, c), RawBlock(c, c), RawBlock(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
                         RawBlock(c, c), conv(c, 3))


def test_raw_taesd_loads_bit_identical(tmp_path):
    torch.manual_seed(0)
    enc, dec = raw_encoder(), raw_decoder()
    torch.save(enc.state_dict(), tmp_path / "taesd_encoder.pth")
    torch.save(dec.state_dict(), tmp_path / "taesd_decoder.pth")
    ae = load_autoencoder(tmp_path)  # a folder of raw files
    assert downsample_factor(ae) == 8 and ae.config.latent_channels == 4
    x01 = torch.randint(0, 256, (2, 3, 64, 64)).float() / 256  # dyadic: exact in both [0,1] and [-1,1]
    with torch.no_grad():
        z_raw = enc(x01)
        z = ae.encode(x01 * 2 - 1).latents
        assert torch.equal(z, z_raw)
        y_raw = dec(z_raw)
        y = ae.decode(z).sample
        assert torch.equal(y, y_raw.mul(2).sub(1))


def test_raw_round_trip_through_mapping(tmp_path):
    torch.manual_seed(1)
    ae = build_autoencoder(downsample=4, latent_channels=4, channels=16).eval()
    save_taesd_raw(ae, tmp_path)
    back = load_taesd_raw(tmp_path / "taesd_encoder.pth", tmp_path / "taesd_decoder.pth")
    assert downsample_factor(back) == 4
    for (k, a), (k2, b) in zip(ae.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_diffusers_folder_round_trip(tmp_path):
    ae = build_autoencoder(4, 4, 8)
    ae.register_to_config(scaling_factor=1.7, shift_factor=0.1)
    ae.save_pretrained(tmp_path / "ae")
    back = load_autoencoder(tmp_path / "ae")
    assert back.config.scaling_factor == 1.7
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ae.eval().encode(x).latents, back.encode(x).latents)


def test_loader_errors(tmp_path):
    with pytest.raises(LRFError, match="not found"):
        load_autoencoder(tmp_path / "missing")
    (tmp_path / "taesd_encoder.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(LRFError, match="taesd_encoder.pth"):
        load_autoencoder(tmp_path)
    with pytest.raises(ConfigError, match="downsample"):
        build_autoencoder(downsample=3)


def test_kl_autoencoder_pipeline_and_bundle(tmp_path):
    """A pipeline on an ``AutoencoderKL`` (config shift None) saves, loads as a KL VAE, encodes to its
    posterior mode, and exports a bundle whose ONNX Runtime image equals the pipeline's."""
    den = tiny_family_denoiser("luminars")
    torch.manual_seed(0)
    ae = build_kl_autoencoder(latent_channels=4, block_out_channels=(32, 32, 32), layers_per_block=1).eval()
    assert ae.config.shift_factor is None and downsample_factor(ae) == 4
    LRFPipeline(den, ae).save_pretrained(tmp_path / "ckpt")
    pipe = LRFPipeline.from_checkpoint(tmp_path / "ckpt")
    assert type(pipe.autoencoder).__name__ == "AutoencoderKL"
    pixels = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        mode = ae.encode(pixels.permute(0, 3, 1, 2).float() / 127.5 - 1).latent_dist.mode() * ae.config.scaling_factor
        assert torch.allclose(encode_pixels(pipe.autoencoder, pixels), mode, atol=1e-6)
    (result,) = export_bundles(ExportOptions(target="onnx", steps=2, checkpoint=str(tmp_path / "ckpt"), out=str(tmp_path / "b")))
    assert result.ok
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["latent"]["shift_factor"] == 0.0
    rt = BundleRuntime(tmp_path / "b")
    values = rt.inputs({"class": 3, "seed": 0})
    image = rt.finish(rt.iterate(values), values)
    ref = np.asarray(pipe(class_labels=[3], seeds=[0], num_inference_steps=2).images[0])
    assert np.abs(image.reshape(ref.shape).astype(int) - ref.astype(int)).max() <= 1


def test_kl_autoencoder_errors(tmp_path):
    with pytest.raises(ConfigError, match="positive"):
        build_kl_autoencoder(block_out_channels=())
    (tmp_path / "ae").mkdir()
    (tmp_path / "ae" / "config.json").write_text(json.dumps({"_class_name": "VQModel"}))
    with pytest.raises(LRFError, match="VQModel.*not supported"):
        load_autoencoder(tmp_path / "ae")


def test_haar_transform_is_lossless_and_orthonormal():
    from lrf_model.wavelet import haar_dwt, haar_idwt

    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    y = haar_dwt(x)
    assert y.shape == (2, 12, 4, 3)
    assert torch.allclose(haar_idwt(y), x, atol=1e-12)
    assert torch.allclose(y.pow(2).sum(), x.pow(2).sum())  # orthonormal: energy kept
    # LL is the 2x2 block sum / 2; HH the checkerboard difference / 2
    block = x[:, :, :2, :2]
    assert torch.allclose(y[:, 0:3, 0, 0], block.sum((2, 3)) / 2)
    assert torch.allclose(y[:, 9:12, 0, 0], (block[..., 0, 0] - block[..., 0, 1] - block[..., 1, 0] + block[..., 1, 1]) / 2)


def test_wavelet_autoencoder_round_trips_and_exports(tmp_path):
    """IRIS's wavelet autoencoder: images in, 12 subband channels to the inner encoder, images out;
    f counts the transform; it saves, loads by class and its decoder matches through ONNX Runtime."""
    from lrf_model.wavelet import WaveletAutoencoder

    ae = build_autoencoder(downsample=4, latent_channels=4, channels=8, wavelet=True).eval()
    assert isinstance(ae, WaveletAutoencoder) and downsample_factor(ae) == 4
    assert ae.encoder.layers[0].in_channels == 12
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = ae.encode(x).latents
        assert z.shape == (1, 4, 8, 8) and ae.decode(z).sample.shape == (1, 3, 32, 32)
    ae.save_pretrained(tmp_path / "ae")
    back = load_autoencoder(tmp_path / "ae")
    assert isinstance(back, WaveletAutoencoder)
    with torch.no_grad():
        assert torch.equal(back.decode(z).sample, ae.decode(z).sample)
    with pytest.raises(ConfigError, match="wavelet"):
        build_autoencoder(downsample=2, wavelet=True)
    LRFPipeline(tiny_family_denoiser("iris"), ae).save_pretrained(tmp_path / "ckpt")
    (result,) = export_bundles(ExportOptions(target="onnx", steps=2, checkpoint=str(tmp_path / "ckpt"), out=str(tmp_path / "b")))
    assert result.ok


def test_dc_autoencoder_trains_and_serves_a_microforge_pipeline(tmp_path):
    """MicroForge's DC-AE: ``lrf-train-ae --dc`` trains and saves it with a scale but no shift (its
    class has none), it loads by class, and a pipeline on it exports a bundle whose ONNX Runtime image
    equals the pipeline's."""
    from diffusers import AutoencoderDC

    from lrf_model.training import main_train_ae

    from .test_eval import write_cifar_tree

    ae = build_dc_autoencoder(downsample=8, latent_channels=8, channels=8, layers_per_block=1)
    assert isinstance(ae, AutoencoderDC) and downsample_factor(ae) == 8
    assert ae.config.encoder_block_out_channels == (8, 16, 32, 64)
    with pytest.raises(ConfigError, match="power of two"):
        build_dc_autoencoder(downsample=6)
    tree = write_cifar_tree(tmp_path / "data", n_per_class=4)
    main_train_ae(["--data", str(tree), "--out", str(tmp_path / "ae"), "--epochs", "1", "--batch-size", "8", "--dc",
                   "--downsample", "8", "--latent-channels", "8", "--channels", "8", "--layers-per-block", "1"])
    trained = load_autoencoder(tmp_path / "ae")
    assert isinstance(trained, AutoencoderDC) and "shift_factor" not in trained.config
    assert json.loads((tmp_path / "ae" / "metrics.json").read_text())["psnr_db"] > 0
    family = FAMILIES["microforge"]  # its tiny config's 4x4 latents: 32 px at f=8
    torch.manual_seed(0)
    den = randomize(family.build(**family.tiny_config, latent_channels=8, class_names=list(CIFAR10_CLASSES)), std=TEST_STD)
    LRFPipeline(den.eval(), trained).save_pretrained(tmp_path / "ckpt")
    pipe = LRFPipeline.from_checkpoint(tmp_path / "ckpt")
    (result,) = export_bundles(ExportOptions(target="onnx", steps=2, checkpoint=str(tmp_path / "ckpt"), out=str(tmp_path / "b")))
    assert result.ok, result.parity
    rt = BundleRuntime(tmp_path / "b")
    values = rt.inputs({"class": 3, "seed": 0})
    image = rt.finish(rt.iterate(values), values)
    ref = np.asarray(pipe(class_labels=[3], seeds=[0], num_inference_steps=2).images[0])
    assert np.abs(image.reshape(ref.shape).astype(int) - ref.astype(int)).max() <= 1
