"""Editing in the reference model: image-to-image strength and inpainting (lrf_model/editing.py),
through the pipeline and lrf-generate, with their limiting cases exact and bad input refused."""

import numpy as np
import pytest
import torch
from PIL import Image

from lrf_model.data import to_pixels
from lrf_model.data import paste_unmasked
from lrf_model.editing import start_index
from lrf_model.errors import LRFError
from lrf_model.generate import main as generate
from lrf_model.pipeline import LRFPipeline
from lrf_model.sampling import batch_noise, sample


@pytest.fixture
def pipe(tiny_checkpoint) -> LRFPipeline:
    return LRFPipeline.from_checkpoint(tiny_checkpoint)


def picture(side: int, seed: int = 0) -> np.ndarray:
    """A smooth 8-bit RGB test picture (gradients, not noise, so that the autoencoder has something to keep)."""
    y, x = np.mgrid[0:side, 0:side] / side
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x + seed)], -1)
    return (rgb * 255).round().astype(np.uint8)


def batch(pixels: np.ndarray, n: int = 1) -> torch.Tensor:
    return torch.from_numpy(pixels)[None].expand(n, -1, -1, -1)


def test_start_index_rounds_half_up():
    """Half up, not Python's half-to-even, so that every language starts at the same index."""
    assert [start_index(4, s) for s in (0.0, 0.125, 0.25, 0.5, 0.625, 1.0)] == [4, 3, 3, 2, 1, 0]
    assert start_index(50, 0.01) == 49 and start_index(1, 0.5) == 0
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(LRFError, match="out of range"):
            start_index(4, bad)


def test_strength_one_is_plain_generation_bit_for_bit(pipe):
    image = batch(picture(pipe.image_side), 2)
    plain = pipe.generate_latents([3, 5], [0, 1], steps=4)
    edited = pipe.generate_latents([3, 5], [0, 1], steps=4, image=image, strength=1.0)
    assert torch.equal(plain, edited)


def test_strength_zero_is_the_reconstruction(pipe):
    image = batch(picture(pipe.image_side))
    z = pipe.generate_latents([0], [7], steps=4, image=image, strength=0.0)
    assert torch.equal(z, pipe.encode(image))
    assert torch.equal(pipe.generate_tensor([0], [7], image=image, strength=0.0), pipe.decode(pipe.encode(image)))


def test_partial_strength_starts_on_the_noised_input(pipe):
    """Strength 0.5 of 4 steps runs the last 2 steps from (1 - t_2) E(x) + t_2 eps."""
    image = batch(picture(pipe.image_side))
    starts = []
    pipe.generate_latents([1], [3], steps=4, image=image, strength=0.5, callback=lambda i, z, _state: starts.append(i))
    assert starts == [0, 1]
    known, eps = pipe.encode(image), batch_noise([3], pipe.latent_shape)
    expected = sample(pipe.denoiser, 0.5 * known + 0.5 * eps, torch.tensor([1]), [0.5, 0.25, 0.0],
                      pipe.denoiser.config.num_classes, 3.0)
    assert torch.allclose(pipe.generate_latents([1], [3], steps=4, image=image, strength=0.5), expected, atol=1e-6)


def test_inpainting_keeps_the_known_region(pipe):
    side = pipe.image_side
    image = batch(picture(side))
    mask = torch.zeros(1, 1, side, side)
    mask[..., : side // 2, :] = 1  # regenerate the top half
    z = pipe.generate_latents([2], [0], steps=4, image=image, mask=mask)
    known = pipe.encode(image)
    rows = z.shape[-2] // 2
    assert torch.equal(z[..., rows:, :], known[..., rows:, :])  # the last step reaches t = 0: the input's latent
    assert not torch.allclose(z[..., :rows, :], known[..., :rows, :])
    out = pipe.generate_tensor([2], [0], image=image, mask=mask)
    kept = to_pixels(out)[0, side // 2 + 1 :]  # below the one-pixel blending band
    assert torch.equal(kept, image[0, side // 2 + 1 :])


def test_an_all_black_mask_returns_the_input(pipe):
    side = pipe.image_side
    image = batch(picture(side, seed=2))
    mask = torch.zeros(1, 1, side, side)
    assert torch.equal(to_pixels(pipe.generate_tensor([4], [1], image=image, mask=mask)), image)
    # Without pasting, it is the autoencoder's reconstruction.
    assert torch.equal(pipe.generate_tensor([4], [1], image=image, mask=mask, keep_unmasked=False),
                       pipe.decode(pipe.encode(image)))


def test_resampling_redoes_inpainting_steps_and_keeps_the_known_region(pipe):
    """RePaint: resample=1 is plain inpainting bit for bit; more repeats change the masked region
    only (the blend resets the rest every step), and the noise is the seed's, so it repeats."""
    side = pipe.image_side
    image = batch(picture(side))
    mask = torch.zeros(1, 1, side, side)
    mask[..., : side // 2, :] = 1
    plain = pipe.generate_latents([2], [0], steps=4, image=image, mask=mask)
    assert torch.equal(pipe.generate_latents([2], [0], steps=4, image=image, mask=mask, resample=1), plain)
    twice = pipe.generate_latents([2], [0], steps=4, image=image, mask=mask, resample=2)
    assert torch.equal(twice, pipe.generate_latents([2], [0], steps=4, image=image, mask=mask, resample=2))
    known = pipe.encode(image)
    rows = slice(side // 2 // 4, None)  # latent rows wholly outside the mask (factor 4)
    assert torch.equal(twice[..., rows, :], known[..., rows, :]) and not torch.equal(twice, plain)
    with pytest.raises(LRFError, match="resampling .* is for inpainting"):
        pipe.generate_latents([2], [0], steps=4, image=image, resample=2)


def test_paste_unmasked_blends_one_pixel_band():
    gen, orig = torch.ones(1, 3, 8, 8), -torch.ones(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:5, 2:5] = 1
    out = paste_unmasked(gen, orig, mask)
    assert torch.equal(out[..., 2:5, 2:5], gen[..., 2:5, 2:5])  # the masked region is all generated
    assert torch.equal(out[..., 6:, :], orig[..., 6:, :])  # two pixels away: all input
    band = out[0, 0, 5, 3].item()
    assert -1 < band < 1  # next to the mask: a mix


def test_lrf_generate_edits_and_refuses_bad_input(tmp_path, tiny_checkpoint, capsys):
    side = LRFPipeline.from_checkpoint(tiny_checkpoint).image_side
    Image.fromarray(picture(side)).save(tmp_path / "in.png")
    Image.fromarray(picture(2 * side)).save(tmp_path / "big.png")
    m = np.zeros((side, side), np.uint8)
    m[: side // 2] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    (tmp_path / "text.png").write_text("not an image")
    common = ["--checkpoint", str(tiny_checkpoint), "--class", "cat", "--steps", "4"]

    generate([*common, "--init-image", str(tmp_path / "big.png"), "--strength", "0.5", "--out", str(tmp_path / "a")])
    captured = capsys.readouterr()
    assert f"resized from {2 * side}x{2 * side} to {side}x{side}" in captured.err
    assert "image-to-image" in captured.out and (tmp_path / "a" / "cat_seed0.png").is_file()
    generate([*common, "--init-image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
              "--out", str(tmp_path / "b")])
    out = np.asarray(Image.open(tmp_path / "b" / "cat_seed0.png"))
    assert np.array_equal(out[side // 2 + 1 :], picture(side)[side // 2 + 1 :])

    bad = {
        "--mask needs an image to edit": ["--mask", str(tmp_path / "mask.png")],
        "--strength needs an image to edit": ["--strength", "0.5"],
        "out of range": ["--init-image", str(tmp_path / "in.png"), "--strength", "1.5"],
        "not a readable image": ["--init-image", str(tmp_path / "text.png")],
        "does not exist": ["--init-image", str(tmp_path / "missing.png")],
        "--resample 2 is invalid": ["--init-image", str(tmp_path / "in.png"), "--resample", "2"],
        "--resample 0 is invalid": ["--init-image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
                                    "--resample", "0"],
        f"the mask is {side}x{side} but the image is {2 * side}x{2 * side}":
            ["--init-image", str(tmp_path / "big.png"), "--mask", str(tmp_path / "mask.png")],
    }
    for message, flags in bad.items():
        capsys.readouterr()
        with pytest.raises(SystemExit):
            generate([*common, *flags, "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err.strip().splitlines()
        assert err and err[-1].startswith("error: ") and message in err[-1], (message, err)
        assert not (tmp_path / "bad").exists()


def test_pipeline_takes_pil_images(pipe):
    side = pipe.image_side
    im = Image.fromarray(picture(side))
    mask = Image.fromarray(np.zeros((side, side), np.uint8))
    out = pipe(["cat", "dog"], seeds=[0, 1], image=im, mask=mask, output_type="pt").images
    assert torch.equal(to_pixels(out), batch(picture(side), 2))
    with pytest.raises(LRFError, match="needs an input image"):
        pipe(["cat"], mask=mask)
