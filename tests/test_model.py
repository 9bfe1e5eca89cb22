import pytest
import torch

from lrf_model.errors import ConfigError
from lrf_model.model import LRFDenoiser
from lrf_model.sampling import guided_velocity
from lrf_model.training import flow_loss, logit_normal, min_snr_weight

from .conftest import randomize


def test_default_shapes_and_parameter_count():
    m = LRFDenoiser()
    n = sum(p.numel() for p in m.parameters())
    assert 1.3e6 < n < 1.7e6, n  # "about 1.5M"
    z = torch.randn(3, 4, 8, 8)
    v = m(z, torch.rand(3), torch.tensor([0, 5, 10]))
    assert v.shape == z.shape
    assert torch.count_nonzero(v) == 0  # zero-initialised output


@pytest.mark.parametrize("mixer", ["softmax", "linear"])
def test_recursion_count_changes_output(mixer):
    m = randomize(LRFDenoiser(hidden_dim=32, num_heads=2, mixer=mixer)).eval()
    z, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([1, 2])
    outs = [m(z, t, y, r) for r in (1, 2, 3, 4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(outs[a], outs[b], atol=1e-4)
    with pytest.raises(ConfigError, match="recursions=5"):
        m(z, t, y, 5)


def test_cfg_scale_one_is_conditional_prediction(tiny_denoiser):
    z, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([3, 7])
    with torch.no_grad():
        guided = guided_velocity(tiny_denoiser, z, t, y, 10, 1.0)
        cond = tiny_denoiser(z, t, y)
        uncond = tiny_denoiser(z, t, torch.full_like(y, 10))
    torch.testing.assert_close(guided, cond, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(cond, uncond, atol=1e-4)  # the class matters


@pytest.mark.parametrize("weighting", [min_snr_weight, None])
def test_loss_falls_when_overfitting_tiny_batch(weighting):
    torch.manual_seed(0)
    m = LRFDenoiser(hidden_dim=32, num_heads=2, num_blocks=2)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    z0, y = torch.randn(8, 4, 8, 8), torch.arange(8)
    t, noise = logit_normal(8, torch.device("cpu")), torch.randn(8, 4, 8, 8)
    losses = []
    for _ in range(60):
        loss = flow_loss(m, z0, y, t, noise, 2, weighting)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("field,value", [("hidden_dim", 0), ("num_heads", 5), ("mixer", "fourier"),
                                          ("recursions", 9), ("mlp_ratio", -1.0), ("latent_size", "8")])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        LRFDenoiser(**{field: value})
