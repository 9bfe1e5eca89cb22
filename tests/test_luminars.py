"""LuminaRS (seed 003) as a family: its flow convention, its recursion and its published size.
(Training, saving, loading and exporting to every target are test_families' for every family.)"""

from __future__ import annotations

import pytest
import torch

from lrf_model.families import FAMILIES
from lrf_model.families.luminars import PUBLISHED_CONFIG, parameter_budget
from lrf_model.sampling import sample, schedule

from .conftest import tiny_family_denoiser


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_family_denoiser("luminars")


def seed_sample(model, noise: torch.Tensor, labels: torch.Tensor, steps: int, recursions: int) -> torch.Tensor:
    """The seed's own sampler: Euler from noise at t = 0 to the image at t = 1 along v = x_clean - noise."""
    x = noise
    ts = [1.0 - t for t in schedule(steps)]  # the toolkit's schedule, read in the seed's time
    for i in range(steps):
        x = x + (ts[i + 1] - ts[i]) * model.seed_velocity(x, torch.full((x.shape[0],), ts[i]), labels, recursions)
    return x


@pytest.mark.parametrize("recursions", [1, 3])
def test_seed_convention_and_toolkit_convention_give_the_same_sample(model, recursions):
    noise, labels = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 7])
    with torch.no_grad():
        seed = seed_sample(model, noise, labels, 6, recursions)
    toolkit = sample(model, noise, labels, schedule(6), model.config.num_classes, 1.0, recursions)
    assert seed.abs().mean() > 0.1 and (seed - noise).abs().mean() > 1e-2  # the network moved the sample
    torch.testing.assert_close(toolkit, seed, rtol=1e-5, atol=1e-5)


def test_recursion_is_shared_weight_refinement(model):
    """T passes of the same U-Net: more passes change the output, and add no parameters."""
    z, t, y = torch.randn(1, 4, 8, 8), torch.tensor([0.5]), torch.tensor([1])
    with torch.no_grad():
        outs = [model(z, t, y, r) for r in (1, 2, 3)]
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(outs, outs[1:]))
    assert FAMILIES["luminars"].max_recursions(model) == 3
    with pytest.raises(ValueError, match="recursions=4 is out of range"):
        model(z, t, y, 4)


def test_published_configuration_matches_the_seeds_parameter_budget():
    with torch.device("meta"):  # shapes only: 89M parameters need no memory
        model = FAMILIES["luminars"].build(**PUBLISHED_CONFIG)
    budget = parameter_budget(model)
    seed = {"encoder": 35e6, "bottleneck": 15e6, "decoder": 35e6}
    for part, n in seed.items():
        assert abs(budget[part] - n) <= 0.1 * n, (part, budget)
    assert abs(sum(budget.values()) - 90e6) <= 9e6, budget


def test_staged_training_trains_only_the_cross_attention(tmp_path, capsys):
    """The seed's stage 2: from a trained run, the cross-attention alone at a lower rate, the rest frozen."""
    from lrf_model.families import load_denoiser
    from lrf_model.training import main_train, main_train_ae

    from .test_eval import write_cifar_tree

    tree = write_cifar_tree(tmp_path / "data", n_per_class=4)
    main_train_ae(["--data", str(tree), "--out", str(tmp_path / "ae"), "--epochs", "1", "--batch-size", "8",
                   "--channels", "8", "--latent-channels", "4"])
    common = ["--data", str(tree), "--autoencoder", str(tmp_path / "ae"), "--batch-size", "8",
              "--epochs", "1", "--sample-steps", "1", "--eval-per-class", "0"]
    main_train([*common, "--family", "luminars", "--out", str(tmp_path / "s1"), "--widths", "16,32", "--cond-tokens", "2",
                "--recursion-choices", "1,2"])
    # No --family: the --init-from model's; no --recursion-choices: the family's, up to what that model runs.
    main_train([*common, "--out", str(tmp_path / "s2"), "--init-from", str(tmp_path / "s1"), "--train-only",
                "cross_attention", "--lr", "1e-2"])
    before = load_denoiser(tmp_path / "s1" / "denoiser").state_dict()
    after = load_denoiser(tmp_path / "s2" / "denoiser").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".cross." in k for k in changed), sorted(changed)
    for bad, message in ((["--train-only", "mlp"], "no such part (it has: cross_attention)"),
                         (["--family", "unet2d"], "holds a luminars model, not unet2d"),
                         (["--recursion-choices", "1,3"], "runs at most 2 recursions")):
        with pytest.raises(SystemExit) as e:
            main_train([*common, "--out", str(tmp_path / "s3"), "--init-from", str(tmp_path / "s1"), *bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and message in err[-1] and not (tmp_path / "s3").exists(), err
