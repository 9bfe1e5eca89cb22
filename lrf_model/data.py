"""CIFAR-10 loading from the formats people actually have, and a per-autoencoder latent cache.

Accepted sources (``load_cifar10``):
- the official ``cifar-10-batches-py`` folder (``data_batch_1..5``, ``test_batch``);
- an image-folder tree ``ROOT/{train,test}/<class>/*.{png,jpg}``;
- a ``.tar.gz`` of that tree (e.g. ``../shared/data/cifar10/cifar10_jpg_yoongikim.tar.gz``);
- the lossless convnetjs subset (``cifar10_batch_{0..3}.png``: the first 4,000 training images,
  ``cifar10_batch_50.png``: the first 1,000 test images, ``labels_51000.txt``), the exact pixels
  for tests that the JPEG archive cannot give.

Images come back as uint8 arrays ``(N, 32, 32, 3)`` with int64 labels, class index order
being CIFAR-10's (which is also the alphabetical order of the class folder names).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .classes import CIFAR10_CLASSES, class_index  # noqa: F401  (re-exported)
from .errors import LRFError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def default_data_path() -> Path:
    """The CIFAR-10 archive beside the project checkout (``../shared/data/cifar10``)."""
    root = Path(__file__).resolve().parents[2]
    return root / "shared" / "data" / "cifar10" / "cifar10_jpg_yoongikim.tar.gz"


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _class_index(name: str) -> int:
    if name not in CIFAR10_CLASSES:
        raise LRFError(f"unknown class folder '{name}'; expected one of {', '.join(CIFAR10_CLASSES)}")
    return CIFAR10_CLASSES.index(name)


def _from_tree_entries(entries: list[tuple[str, str, bytes]], what: str) -> tuple[np.ndarray, np.ndarray]:
    """entries: (class_name, file_name, bytes); sorted so that the order is reproducible."""
    if not entries:
        raise LRFError(f"no images found in {what}; expected SPLIT/<class>/*.png|jpg")
    entries.sort(key=lambda e: (_class_index(e[0]), e[1]))
    images = np.stack([_decode(b) for _, _, b in tqdm(entries, desc=f"decode {what}", leave=False)])
    labels = np.array([_class_index(c) for c, _, _ in entries], dtype=np.int64)
    return images, labels


def _load_tar(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    entries: list[tuple[str, str, bytes]] = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                # Accept an optional top-level folder: [prefix/]split/class/file
                if not member.isfile() or len(parts) < 3 or parts[-3] != split:
                    continue
                if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                    continue
                f = tar.extractfile(member)
                assert f is not None
                entries.append((parts[-2], parts[-1], f.read()))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise LRFError(f"cannot read archive {path}: {e}; pass a valid .tar.gz of SPLIT/<class>/*.jpg") from None
    return _from_tree_entries(entries, f"{path.name}:{split}")


def _load_tree(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    split_dir = root / split
    if not split_dir.is_dir():
        raise LRFError(f"{root} has no '{split}' folder; expected {root}/{split}/<class>/*.png")
    entries = [
        (p.parent.name, p.name, p.read_bytes())
        for p in split_dir.glob("*/*")
        if p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return _from_tree_entries(entries, f"{root}/{split}")


def _load_python_batches(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            raise LRFError(f"missing CIFAR-10 batch {path}; the folder must hold data_batch_1..5 and test_batch")
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the official CIFAR-10 format is a pickle
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _load_lossless_subset(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Each PNG row is one image (1024 RGB pixels, row-major); labels are one integer a line,
    the 50,000 training labels first, then the first 1,000 test labels."""
    names = [f"cifar10_batch_{i}.png" for i in range(4)] if split == "train" else ["cifar10_batch_50.png"]
    try:
        labels = np.loadtxt(root / "labels_51000.txt", dtype=np.int64)
        rows = [np.asarray(Image.open(root / n).convert("RGB"), dtype=np.uint8) for n in names]
    except (OSError, ValueError) as e:
        raise LRFError(f"cannot read the lossless CIFAR-10 subset in {root} ({e}); restore its PNGs and labels") from None
    images = np.concatenate(rows).reshape(-1, 32, 32, 3)
    start = 0 if split == "train" else 50_000
    return images, labels[start : start + len(images)]


def load_cifar10(source: str | Path | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load one split of CIFAR-10 as ``(images uint8 (N,32,32,3), labels int64 (N,))``."""
    if split not in ("train", "test"):
        raise LRFError(f"unknown split '{split}'; use 'train' or 'test'")
    path = Path(source) if source is not None else default_data_path()
    if not path.exists():
        raise LRFError(f"CIFAR-10 data not found at {path}; pass --data PATH (folder, batches folder or .tar.gz)")
    if path.is_file():
        return _load_tar(path, split)
    if (path / "data_batch_1").is_file() or (path / "test_batch").is_file():
        return _load_python_batches(path, split)
    if (path / "labels_51000.txt").is_file():
        return _load_lossless_subset(path, split)
    return _load_tree(path, split)


def from_pixels(pixels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """8-bit RGB (N,H,W,3), any integer dtype -> float (N,3,H,W) in [-1, 1] of ``dtype`` (the
    autoencoder's, float16 in an fp16 bundle): the autoencoder's input convention, and the start
    of every encoder graph (so no runtime converts pixels)."""
    return pixels.to(dtype).permute(0, 3, 1, 2).div(127.5).sub(1.0)


def to_pixels(x: torch.Tensor, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """float (N,3,H,W) in [-1, 1] -> 8-bit RGB (N,H,W,3) of ``dtype``: the one [-1, 1] -> pixel
    formula. Every decoder graph ends with it, so runtimes show the decoder's output as it is."""
    return ((x.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).round().to(dtype)


def paste_unmasked(generated: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inpainting's result: the input's pixels outside the mask, the generated ones inside it,
    blended over one pixel (the pipeline's and every bundle's ``decoder`` graph).

    ``generated``, ``original``: (B, 3, H, W) in [-1, 1]; ``mask``: (B, 1, H, W) in {0, 1}. The blend
    weight is the mask widened by a 3x3 average, so the masked region is fully generated and the
    pixels next to it are a mix. A mask of ones returns ``generated`` exactly."""
    soft = torch.maximum(mask, F.avg_pool2d(mask, 3, stride=1, padding=1, count_include_pad=False))
    return soft * generated + (1 - soft) * original


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N,H,W,3) array -> float (N,3,H,W) in [-1, 1]."""
    return from_pixels(torch.from_numpy(images))


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (N,3,H,W) in [-1, 1] -> uint8 (N,H,W,3) array."""
    return to_pixels(x.detach().float()).cpu().numpy()


def file_digest(paths: list[Path]) -> str:
    """Short sha256 over the given files' bytes: keys the latent cache to one autoencoder."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_dataset(
    autoencoder,
    images: np.ndarray,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Encode uint8 images to (unscaled) latents with a frozen autoencoder."""
    from .autoencoder import encoded  # the autoencoder module reads pixels with this one's functions

    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="encode latents", leave=False):
        x = images_to_tensor(images[i : i + batch_size]).to(device)
        out.append(encoded(autoencoder, x).float().cpu())
    # Contiguous, as a reloaded cache is: oneDNN may return channels-last latents, and bf16
    # kernels round differently on another layout (a resumed run would not match exactly).
    return torch.cat(out).contiguous()


def cached_latents(
    autoencoder,
    autoencoder_dir: Path,
    images: np.ndarray,
    cache_dir: Path,
    tag: str,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Latents of ``images``, encoded once per autoencoder and kept as ``.npy`` in ``cache_dir``.

    The file name carries a hash of the autoencoder's weights and config, so retraining
    the autoencoder can never silently reuse stale latents.
    """
    digest = file_digest([p for p in Path(autoencoder_dir).iterdir() if p.is_file()])
    path = Path(cache_dir) / f"{tag}-{len(images)}-{digest}.latents.npy"
    if path.is_file():
        arr = np.load(path)
        if arr.shape[0] == len(images):
            return torch.from_numpy(arr)
    latents = encode_dataset(autoencoder, images, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, latents.numpy())
    tmp.replace(path)
    return latents
