"""MicroForge (seed 002): its zigzag orders, selective scan, carried plan and published size."""

import pytest
import torch

from lrf_model.families import FAMILIES, latent_shape
from lrf_model.families.microforge import PUBLISHED_CONFIG, SelectiveScan, ZigZag, balanced_weight
from lrf_model.sampling import CarriedState, sample, velocity_fn
from lrf_model.training import flow_loss

from .conftest import tiny_family_denoiser


@pytest.mark.parametrize("by_columns", [False, True])
def test_zigzag_is_the_snake_order_and_its_inverse(by_columns):
    side = 4
    order = ZigZag(side, by_columns)
    x = torch.arange(side * side, dtype=torch.float32).reshape(1, -1, 1)  # token i holds i
    walked = order.to_scan(x).flatten().long().tolist()
    lines = [[(j * side + i) if by_columns else (i * side + j) for j in range(side)] for i in range(side)]
    assert walked == [k for i, line in enumerate(lines) for k in (line if i % 2 == 0 else line[::-1])]
    assert all(abs(a - b) in (1, side) for a, b in zip(walked, walked[1:]))  # neighbours stay neighbours
    assert torch.equal(order.from_scan(order.to_scan(x)), x)


def test_selective_scan_is_mambas_recurrence():
    """The module against the recurrence written out token by token, per direction, in zigzag order."""
    torch.manual_seed(0)
    side, D, N = 3, 4, 2
    scan = SelectiveScan(D, side, N, by_columns=False).double()
    x = torch.randn(2, side * side, D, dtype=torch.float64)
    F = torch.nn.functional
    u = F.silu(scan.conv(scan.inp(x).transpose(1, 2).reshape(2, D, side, side)).reshape(2, D, -1).transpose(1, 2))
    u = scan.order.to_scan(u)
    y = u * scan.skip
    for d, reverse in enumerate((False, True)):
        dt, bc = F.softplus(scan.dt[d](u)), scan.bc[d](u)
        A = -torch.exp(scan.A_log[d])  # (D, N)
        h = torch.zeros(2, D, N, dtype=torch.float64)
        for i in (range(side * side - 1, -1, -1) if reverse else range(side * side)):
            h = torch.exp(dt[:, i, :, None] * A) * h + (dt[:, i] * u[:, i])[:, :, None] * bc[:, i, None, :N]
            y[:, i] = y[:, i] + (h * bc[:, i, None, N:]).sum(-1)
    expected = scan.out(scan.order.from_scan(y) * F.silu(scan.gate(x)))
    torch.testing.assert_close(scan(x), expected)


def test_the_plan_is_carried_from_step_to_step():
    """Sampling carries the plan: the trajectory differs from one restarted at every step (no
    carry), and a CarriedState sampler is what the pipeline runs."""
    model = tiny_family_denoiser("microforge")
    noise = torch.randn(1, *latent_shape(model), generator=torch.Generator().manual_seed(0))
    labels, ts = torch.tensor([3]), [1.0, 0.75, 0.5, 0.25, 0.0]
    plans = []
    carried = sample(velocity_fn(model), noise, labels, ts, 10, 2.0, callback=lambda i, z, s: plans.append(s["plan"]))
    assert len(plans) == 4 and plans[0].shape == (2, 4, 48)  # both halves of the guided batch carry a plan

    def restarted(z, t, y, r=None):
        return model(z, t, y, r)[0]  # every call a first step

    fresh = sample(restarted, noise, labels, ts, 10, 2.0)
    assert (carried - fresh).abs().max() > 1e-4
    lrf = FAMILIES["lrf"].build()
    assert isinstance(velocity_fn(model), CarriedState) and velocity_fn(lrf) is lrf  # a stateless family: the model


def test_without_the_planner_there_is_no_state():
    """The seed's ablation A1: no planner, nothing carried, nothing for a bundle to declare."""
    family = FAMILIES["microforge"]
    model = family.build(**{**family.tiny_config, "planner": False})
    assert family.state_shapes(model) == {} and model.latent_planner is None
    v, state = model(torch.randn(1, *latent_shape(model)), torch.tensor([0.5]), torch.tensor([1]))
    assert state == {} and v.shape == (1, *latent_shape(model))


def test_self_conditioning_feeds_the_models_own_earlier_state():
    """flow_loss with ``carry``: the state comes from the model at ``t_prev`` (no gradient) where
    ``keep``, zeros elsewhere; the loss differs from a first-step loss only through it."""
    model = tiny_family_denoiser("microforge").train()
    z0 = torch.randn(4, *latent_shape(model))
    noise, labels, t = torch.randn_like(z0), torch.tensor([1, 2, 3, 10]), torch.rand(4)
    first = flow_loss(model, z0, labels, t, noise, None, None)
    none_kept = flow_loss(model, z0, labels, t, noise, None, None, carry=(t, torch.zeros(4, dtype=torch.bool)))
    kept = flow_loss(model, z0, labels, t, noise, None, None, carry=((t + 0.1).clamp(max=1), torch.ones(4, dtype=torch.bool)))
    torch.testing.assert_close(none_kept, first)
    assert abs(float(kept - first)) > 1e-6
    kept.backward()  # the earlier state carries no gradient; the step's own does
    assert model.latent_planner.read.q.weight.grad is not None


def test_carried_state_is_the_state_forward_returns():
    """Self-conditioning asks ``carried_state`` (no backbone) for the state ``forward`` returns:
    the same tensors, bit for bit, with and without an incoming plan."""
    model = tiny_family_denoiser("microforge").eval()
    z, t, labels = torch.randn(3, *latent_shape(model)), torch.rand(3), torch.tensor([0, 4, 10])
    for state in (None, {"plan": torch.randn(3, *FAMILIES["microforge"].state_shapes(model)["plan"])}):
        _, expected = model(z, t, labels, state=state)
        carried = model.carried_state(z, t, labels, state=state)
        assert carried.keys() == expected.keys() == {"plan"}
        assert torch.equal(carried["plan"], expected["plan"])


def test_loss_weight_is_the_seeds():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(balanced_weight(t), torch.tensor([0.5, 2 / 3, 1.0, 0.5]))


def test_published_configuration_matches_the_seeds_parameter_count():
    """MicroForge-tiny's backbone: depth 6, width 256, ~8M (the seed's table), 32 plan tokens."""
    model = FAMILIES["microforge"].build(**PUBLISHED_CONFIG)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - 8e6) / 8e6 < 0.1, params
    assert FAMILIES["microforge"].state_shapes(model) == {"plan": (32, 256)}


def test_lrf_train_trains_microforge_and_its_pipeline_generates(tmp_path):
    """lrf-train end to end (self-conditioning, the seed's loss weight by default), then the saved
    model samples through the pipeline with its plan carried; a no-planner run saves planner=False."""
    from lrf_model.autoencoder import build_autoencoder
    from lrf_model.pipeline import LRFPipeline
    from lrf_model.training import main_train

    from .test_eval import write_cifar_tree

    tree = write_cifar_tree(tmp_path / "data", n_per_class=4)
    build_autoencoder(4, 4, 8).save_pretrained(tmp_path / "ae")
    common = ["--data", str(tree), "--autoencoder", str(tmp_path / "ae"), "--family", "microforge", "--batch-size", "8",
              "--epochs", "1", "--sample-steps", "1", "--eval-per-class", "0", "--dim", "32", "--backbone-depth", "2",
              "--state-dim", "2", "--cond-tokens", "2"]
    main_train([*common, "--out", str(tmp_path / "run"), "--plan-tokens", "4"])
    main_train([*common, "--out", str(tmp_path / "ablation"), "--plan-tokens", "0"])
    for run, planner in (("run", True), ("ablation", False)):
        (tmp_path / run / "autoencoder").symlink_to(tmp_path / "ae")
        pipe = LRFPipeline(LRFPipeline.from_checkpoint(tmp_path / run).denoiser, build_autoencoder(4, 4, 8))
        assert pipe.denoiser.config.planner is planner
        images = pipe.generate_tensor([3, 5], [0, 1], steps=2, cfg_scale=2.0)
        assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
