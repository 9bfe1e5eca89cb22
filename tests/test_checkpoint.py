import json

import torch

from lrf_model.model import LRFDenoiser
from lrf_model.pipeline import LRFPipeline, load_denoiser
from lrf_model.training import optimizer_from_tensors, optimizer_to_tensors


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


def test_optimizer_state_round_trip(tmp_path):
    m = LRFDenoiser(hidden_dim=16, num_heads=2, num_blocks=1)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 1])).pow(2).mean().backward()
    opt.step()
    tensors, meta = optimizer_to_tensors(opt)
    meta = json.loads(json.dumps(meta))  # what training_state.json stores
    opt2 = torch.optim.AdamW(m.parameters(), lr=1e-3)
    optimizer_from_tensors(opt2, tensors, meta)
    for s1, s2 in zip(opt.state.values(), opt2.state.values()):
        assert all(torch.equal(torch.as_tensor(s1[k]), torch.as_tensor(s2[k])) for k in s1)
