from pathlib import Path

import pytest
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel

from lrf_model.errors import LRFError
from lrf_model.model import LRFDenoiser
from lrf_model.pipeline import LRFPipeline, load_denoiser
from lrf_model.trainer import STATE_FILE, read_training_state, restore_training_state, save_training_state


def test_denoiser_round_trip_is_bit_exact(tmp_path, tiny_denoiser):
    tiny_denoiser.save_pretrained(tmp_path / "d")
    back = load_denoiser(tmp_path / "d")
    assert {k: v for k, v in back.config.items() if not k.startswith('_')} == \
        {k: v for k, v in tiny_denoiser.config.items() if not k.startswith('_')}
    for (k, a), (k2, b) in zip(tiny_denoiser.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    z, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.equal(tiny_denoiser(z, t, y), back(z, t, y))
    assert not list(tmp_path.glob("d/*.bin")) and not list(tmp_path.glob("d/*.pt"))  # safetensors only


def test_pipeline_folder_round_trip(tiny_checkpoint):
    pipe = LRFPipeline.from_checkpoint(tiny_checkpoint)
    again = LRFPipeline.from_pretrained(str(tiny_checkpoint))  # plain diffusers loading works too
    a = pipe.generate_tensor([3], [11], steps=2)
    b = again.generate_tensor([3], [11], steps=2)
    assert torch.equal(a, b)


def test_training_state_round_trip(tmp_path):
    """Model, EMA, optimizer, schedule and generator come back exactly; a damaged file is one line."""
    m = LRFDenoiser(hidden_dim=16, num_heads=2, num_blocks=1)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    sched = get_cosine_schedule_with_warmup(opt, 2, 10)
    ema = EMAModel(m.parameters(), decay=0.99)
    g = torch.Generator().manual_seed(3)
    m(torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 1])).pow(2).mean().backward()
    opt.step()
    sched.step()
    ema.step(m.parameters())
    torch.rand(5, generator=g)
    save_training_state(tmp_path, 1, {"model": m}, opt, sched, ema, {"g": g}, extra={"note": "x"})
    m2 = LRFDenoiser(hidden_dim=16, num_heads=2, num_blocks=1)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    sched2 = get_cosine_schedule_with_warmup(opt2, 2, 10)
    ema2, g2 = EMAModel(m2.parameters(), decay=0.5), torch.Generator()
    tensors, meta = read_training_state(tmp_path)
    assert restore_training_state(tensors, meta, {"model": m2}, opt2, sched2, ema2, {"g": g2}) == 1
    assert meta["extra"] == {"note": "x"} and ema2.decay == 0.99 and ema2.optimization_step == 1
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(ema.shadow_params, ema2.shadow_params))
    for p1, p2 in zip(m.parameters(), m2.parameters()):
        s1, s2 = opt.state[p1], opt2.state[p2]
        assert s1.keys() == s2.keys() and all(torch.equal(torch.as_tensor(s1[k]), torch.as_tensor(s2[k])) for k in s1)
    assert sched2.get_last_lr() == sched.get_last_lr() and torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=g2))
    (tmp_path / STATE_FILE).write_bytes(b"garbage")
    with pytest.raises(LRFError, match="cannot read the training state"):
        read_training_state(tmp_path)


def test_training_state_resumes_by_parameter_name_when_the_order_changes(tmp_path):
    """A refactor may reorder a model's parameters (the same names): the optimizer's moments and the EMA's
    shadow weights follow the names, not the positions (IRIS's resume broke on exactly this)."""
    class Two(torch.nn.Module):
        def __init__(self, first: str):
            super().__init__()
            shapes = {"a": (3, 5), "b": (7,)}
            for name in (first, *(n for n in shapes if n != first)):
                self.register_parameter(name, torch.nn.Parameter(torch.randn(shapes[name])))

    before, after = Two("a"), Two("b")
    opt, ema = torch.optim.AdamW(before.parameters()), EMAModel(before.parameters(), decay=0.9)
    (before.a.sum() + before.b.pow(2).sum()).backward()
    opt.step()
    ema.step(before.parameters())
    save_training_state(tmp_path, 1, {"model": before}, opt, None, ema)
    opt2, ema2 = torch.optim.AdamW(after.parameters()), EMAModel(after.parameters(), decay=0.9)
    restore_training_state(*read_training_state(tmp_path), {"model": after}, opt2, None, ema2)
    for name in ("a", "b"):
        assert torch.equal(opt.state[getattr(before, name)]["exp_avg"], opt2.state[getattr(after, name)]["exp_avg"])
    assert [tuple(s.shape) for s in ema2.shadow_params] == [(7,), (3, 5)]
    assert torch.equal(ema2.shadow_params[1], ema.shadow_params[0])


def test_shipped_checkpoints_resolve_by_name(tmp_path, monkeypatch):
    """``--checkpoint cifar10`` names the shipped folder; a folder that exists wins over a name."""
    from lrf_model.pipeline import default_checkpoint, resolve_checkpoint

    assert resolve_checkpoint(None) == default_checkpoint() == resolve_checkpoint("cifar10")
    assert resolve_checkpoint("no-such-model") == Path("no-such-model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cifar10").mkdir()
    assert resolve_checkpoint("cifar10") == Path("cifar10")
