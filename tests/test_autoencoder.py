"""TAESD loading: raw .pth files written here from an independent nn.Sequential TAESD."""

import pytest
import torch
import torch.nn as nn

from lrf_model.autoencoder import build_autoencoder, downsample_factor, load_autoencoder, load_taesd_raw, save_taesd_raw
from lrf_model.errors import ConfigError, LRFError


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
