"""Users' own images from local files (nothing is downloaded): ``cifar10`` and ``image_folder``.

``cifar10`` reads the standard CIFAR-10 python batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``,
optionally ``batches.meta``): each a pickled dict whose ``b"data"`` is a uint8 array ``(N, 3072)`` (per row the
1024 red, then green, then blue values of a 32x32 image, row-major) and ``b"labels"`` a list of ``N`` ints in
0..9. ``data_path`` names the ``cifar-10-batches-py`` folder itself or the folder that holds it. The files are
unpickled by a restricted unpickler that builds only numpy arrays, bytes and plain containers (no code runs).
Validation: ``test_batch`` (``n_test``: a subset of it fixed by ``split_seed``; null: all of it).

``image_folder`` reads a ``CLASS/IMAGE`` tree (PNG, JPEG, BMP or WebP, read by Pillow, converted to RGB and
resized to ``image_size`` x ``image_size``): ``data_path`` holds ``train/`` and ``val/`` (or ``test/``) trees
with the same class folders, or is itself one tree, split by ``val_fraction`` (fixed by ``split_seed``).
Classes are the class folders' names, sorted; files of other types and hidden entries are passed over.

Both: pixels normalised per channel with the training images' mean and standard deviation; ``augment``
(random crops with zero padding of 1/8 of the side, 4 pixels at 32, and horizontal flips; training only,
drawn from the trial's seeded batch generator); ``model``: ``resnet_small`` (``depth``, ``width``: see
``_vision.ResNetSmall``) or a torchvision classification model by name (``resnet18``, ...; randomly
initialised, ``num_classes`` set), which needs the optional extra ``hyperswitch[vision]``. A missing or
malformed ``data_path`` is a one-line ConfigError naming the path and what was expected. The loaded arrays
are cached per process (keyed by the files' paths, sizes and modification times).
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import number
from hyperswitch.errors import ConfigError
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of, split_indices
from hyperswitch.workloads._vision import (
    build_model,
    channel_stats,
    check_model_options,
    image_batches,
    normalise,
    seeded_subset,
)

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_EXPECTED = (f"the CIFAR-10 python batches ({', '.join(CIFAR_TRAIN)}, {CIFAR_TEST}) in it or in its "
                  f"{CIFAR_FOLDER} subfolder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# (class names, train images, train labels, validation images, validation labels)
FolderData = tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
FOLDER_EXPECTED = "class folders of images (CLASS/IMAGE.png|jpg), or train/ and val/ (or test/) trees of them"


def _path(value: Any, key: str, expected: str) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ConfigError(f"{key}.data_path", f"is required: a folder holding {expected}", value)
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"{key}.data_path", f"no such folder; expected a folder holding {expected}", str(value))
    if not path.is_dir():
        raise ConfigError(f"{key}.data_path", f"is a file, not a folder; expected a folder holding {expected}",
                          str(value))
    return path


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


# -- CIFAR-10 ------------------------------------------------------------------------------------------------
def cifar_folder(value: Any, key: str = "workload") -> Path:
    """The folder that holds the batches: ``data_path`` itself or its ``cifar-10-batches-py``."""
    path = _path(value, key, CIFAR_EXPECTED)
    for folder in (path, path / CIFAR_FOLDER):
        if (folder / CIFAR_TRAIN[0]).is_file() or (folder / CIFAR_TEST).is_file():
            missing = [f for f in (*CIFAR_TRAIN, CIFAR_TEST) if not (folder / f).is_file()]
            if missing:
                raise ConfigError(f"{key}.data_path", f"{folder} lacks {', '.join(missing)}; expected "
                                  f"{CIFAR_EXPECTED}", str(value))
            return folder
    raise ConfigError(f"{key}.data_path", f"holds no CIFAR-10 batches; expected {CIFAR_EXPECTED}", str(value))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, bytes and plain containers; refuses every other global (no code runs)."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            from numpy._core import multiarray

            return getattr(multiarray, name)
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":  # protocol 5
            from numpy._core import numeric

            return getattr(numeric, "_frombuffer")  # noqa: B009  (private: not in numpy's stubs)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # bytes in a protocol-2 pickle written by Python 3
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _read_batch(file: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images ``(N, 3, 32, 32)``, int64 labels) of one CIFAR-10 python batch."""
    expected = 'a pickled dict with b"data" (uint8, N x 3072) and b"labels" (N ints in 0..9)'
    try:
        with open(file, "rb") as f:
            d = _ArraysOnly(f, encoding="bytes").load()
    except Exception as exc:  # any failure to read is the same user error
        raise ConfigError(f"{key}.data_path", f"cannot read {file} as a CIFAR-10 batch ({_one_line(exc)}); "
                          f"expected {expected}", show_value=False) from None
    if not isinstance(d, dict):
        raise ConfigError(f"{key}.data_path", f"{file} holds a {type(d).__name__}; expected {expected}",
                          show_value=False)
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise ConfigError(f"{key}.data_path", f"{file} has keys {sorted(map(str, d))}; expected {expected}",
                          show_value=False)
    data, labels = d["data"], np.asarray(d["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ConfigError(f"{key}.data_path", f"{file}: data is {what}; expected {expected}", show_value=False)
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu" or (
            labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ConfigError(f"{key}.data_path", f"{file}: labels are not {data.shape[0]} ints in 0..9; expected "
                          f"{expected}", show_value=False)
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _stamp(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    return tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@lru_cache(maxsize=2)
def _cifar_cached(stamp: tuple[tuple[str, int, int], ...], key: str) -> tuple[torch.Tensor, ...]:
    parts = [_read_batch(Path(name), key) for name, _, _ in stamp]
    train, test = parts[:-1], parts[-1]
    xtr = np.concatenate([p[0] for p in train])
    ytr = np.concatenate([p[1] for p in train])
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(test[0]), torch.from_numpy(test[1])


def load_cifar10(data_path: Any, key: str = "workload") -> tuple[torch.Tensor, ...]:
    """(train images, train labels, test images, test labels): uint8 ``(N, 3, 32, 32)`` and int64, cached."""
    folder = cifar_folder(data_path, key)
    return _cifar_cached(_stamp([folder / f for f in (*CIFAR_TRAIN, CIFAR_TEST)]), key)


def _check_cifar(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key, val_fraction=None)
    check_model_options(spec, key)
    if spec["n_test"] is not None:
        number(spec["n_test"], f"{key}.n_test", integer=True, low=1)
    cifar_folder(spec["data_path"], key)


@register_workload(
    "cifar10",
    defaults={"data_path": None, "batch_size": 128, "model": "resnet_small", "depth": 20, "width": 16,
              "augment": True, "n_test": None, "dataset_fraction": 1.0, "split_seed": 0},
    check=_check_cifar,
)
def cifar10(seed: int, *, rank: int = 0, world_size: int = 1, data_path: str, batch_size: int, model: str,
            depth: int, width: int, augment: bool, n_test: int | None, dataset_fraction: float,
            split_seed: int) -> Workload:
    """CIFAR-10 from its python batches at data_path; resnet_small (ResNet-20) or a torchvision model."""
    xtr, ytr, xte, yte = load_cifar10(data_path)
    mean, std = channel_stats(xtr)
    keep = torch.from_numpy(fraction_of(len(ytr), float(dataset_fraction), int(split_seed)))
    if len(keep) < len(ytr):  # (all of them: no copy of the 50,000 images)
        xtr, ytr = xtr[keep], ytr[keep]
    val = torch.from_numpy(seeded_subset(len(yte), None if n_test is None else int(n_test), int(split_seed) + 2))
    torch.manual_seed(seed)
    net: nn.Module = build_model(model, depth, width, 10)
    return Workload(
        name="cifar10",
        model=net,
        loss_fn=nn.functional.cross_entropy,
        train=image_batches(xtr, ytr, int(batch_size), seed, mean, std, bool(augment), rank, world_size),
        val_x=normalise(xte[val], mean, std),
        val_y=yte[val],
    )


# -- image folders -------------------------------------------------------------------------------------------
def _classes(root: Path, key: str, value: Any) -> dict[str, list[Path]]:
    """``{class name: sorted image files}`` of one tree; every class folder must hold an image."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ConfigError(f"{key}.data_path", f"{root} has no class folders; expected {FOLDER_EXPECTED}", value)
    out: dict[str, list[Path]] = {}
    for folder in folders:
        files = sorted(f for f in folder.iterdir()
                       if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"{key}.data_path", f"class folder {folder} holds no images "
                              f"({', '.join(IMAGE_SUFFIXES)}); expected {FOLDER_EXPECTED}", value)
        out[folder.name] = files
    return out


def folder_trees(value: Any, key: str = "workload") -> tuple[dict[str, list[Path]], dict[str, list[Path]] | None]:
    """(train tree, validation tree or None when ``data_path`` is a single tree to split)."""
    path = _path(value, key, FOLDER_EXPECTED)
    val_dir = next((path / n for n in ("val", "test") if (path / n).is_dir()), None)
    if (path / "train").is_dir() or val_dir is not None:
        if not (path / "train").is_dir() or val_dir is None:
            raise ConfigError(f"{key}.data_path", f"has {'train/' if val_dir is None else val_dir.name + '/'} "
                              f"but no {'val/ (or test/)' if val_dir is None else 'train/'}; expected "
                              f"{FOLDER_EXPECTED}", str(value))
        train, val = _classes(path / "train", key, str(value)), _classes(val_dir, key, str(value))
        extra = sorted(set(val) - set(train))
        if extra:
            raise ConfigError(f"{key}.data_path", f"{val_dir} has classes that train/ lacks: {', '.join(extra)}; "
                              f"expected {FOLDER_EXPECTED}", str(value))
    else:
        train, val = _classes(path, key, str(value)), None
    if len(train) < 2:
        raise ConfigError(f"{key}.data_path", f"has {len(train)} class folder; expected at least 2 "
                          f"({FOLDER_EXPECTED})", str(value))
    return train, val


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("workload.name", "image_folder needs Pillow: pip install pillow", "image_folder") from None
    return Image


def _read_images(files: list[Path], size: int, key: str) -> np.ndarray:
    image = _pil()
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with image.open(f) as im:
                out[i] = np.asarray(im.convert("RGB").resize((size, size), image.Resampling.BILINEAR))
        except Exception as exc:  # a corrupt or unreadable image: the same error
            raise ConfigError(f"{key}.data_path", f"cannot read image {f} ({_one_line(exc)})",
                              show_value=False) from None
    return out.transpose(0, 3, 1, 2).copy()


@lru_cache(maxsize=2)
def _tree_cached(stamp: tuple[tuple[str, int, int], ...], labels: tuple[int, ...], size: int,
                 key: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = _read_images([Path(s[0]) for s in stamp], size, key)
    return torch.from_numpy(x), torch.tensor(labels, dtype=torch.int64)


def _load_tree(tree: dict[str, list[Path]], classes: list[str], size: int, key: str) -> tuple[torch.Tensor, ...]:
    files = [f for c in classes for f in tree.get(c, [])]
    labels = tuple(i for i, c in enumerate(classes) for _ in tree.get(c, []))
    return _tree_cached(_stamp(files), labels, size, key)


def load_image_folder(data_path: Any, image_size: int, val_fraction: float, split_seed: int,
                      key: str = "workload") -> FolderData:
    """(class names, train images, train labels, val images, val labels), uint8 ``(N, 3, S, S)``, int64."""
    train, val = folder_trees(data_path, key)
    classes = sorted(train)
    xtr, ytr = _load_tree(train, classes, int(image_size), key)
    if val is not None:
        xval, yval = _load_tree(val, classes, int(image_size), key)
        return classes, xtr, ytr, xval, yval
    tr, va = split_indices(len(ytr), float(val_fraction), int(split_seed))
    if len(tr) == 0 or len(va) == 0:
        raise ConfigError(f"{key}.data_path", f"has {len(ytr)} images: too few to split by val_fraction "
                          f"{val_fraction}", str(data_path))
    keep, held = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
    return classes, xtr[keep], ytr[keep], xtr[held], ytr[held]


def _check_folder(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    check_model_options(spec, key)
    number(spec["image_size"], f"{key}.image_size", integer=True, low=8, high=512)
    folder_trees(spec["data_path"], key)


@register_workload(
    "image_folder",
    defaults={"data_path": None, "image_size": 32, "batch_size": 32, "model": "resnet_small", "depth": 8,
              "width": 16, "augment": False, "val_fraction": 0.2, "dataset_fraction": 1.0, "split_seed": 0},
    check=_check_folder,
)
def image_folder(seed: int, *, rank: int = 0, world_size: int = 1, data_path: str, image_size: int,
                 batch_size: int, model: str, depth: int, width: int, augment: bool, val_fraction: float,
                 dataset_fraction: float, split_seed: int) -> Workload:
    """Images from a CLASS/IMAGE folder tree at data_path (train/ and val/, or split); resnet_small or torchvision."""
    classes, xtr, ytr, xval, yval = load_image_folder(data_path, image_size, val_fraction, split_seed)
    mean, std = channel_stats(xtr)
    keep = torch.from_numpy(fraction_of(len(ytr), float(dataset_fraction), int(split_seed)))
    torch.manual_seed(seed)
    net: nn.Module = build_model(model, depth, width, len(classes))
    return Workload(
        name="image_folder",
        model=net,
        loss_fn=nn.functional.cross_entropy,
        train=image_batches(xtr[keep], ytr[keep], int(batch_size), seed, mean, std, bool(augment), rank,
                            world_size),
        val_x=normalise(xval, mean, std),
        val_y=yval,
    )
