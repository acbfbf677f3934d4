"""Image workloads: ``resnet_small`` on generated shapes, and ``cifar10`` / ``image_folder`` on small files
written here in exactly the real formats (CIFAR-10 python batches: pickled dicts with bytes keys, uint8
``(N, 3072)`` planes; PNG/JPEG class folders written by Pillow). Also: K-FAC's factors for the ResNet's
strided, padded and 1x1 convs against explicit patches, and one-line errors for a bad ``data_path``."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hyperswitch.errors import ConfigError
from hyperswitch.optim import build_optimizer
from hyperswitch.optim.kfac import KFAC
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, validate_workload
from hyperswitch.workloads._vision import ResNetSmall, crop_flip
from hyperswitch.workloads.resnet_small import shapes_data
from tests.optim.test_kfac import _patches_loop

TINY = {"name": "resnet_small", "n_train": 160, "n_test": 60, "width": 4, "batch_size": 16}
TINY_MODEL = {"depth": 8, "width": 4, "batch_size": 16}
SGDM = Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": 0.05}})


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on 2 shared cores more threads make these small convs several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(spec, steps=4, seed=0, policy=SGDM):
    return train_run(spec, policy, {"steps": steps, "eval_every": steps}, seed=seed)


# -- writers in the real formats -----------------------------------------------------------------------------
def write_cifar(root, n_per_batch=40, n_test=80, protocol=pickle.HIGHEST_PROTOCOL, folder="cifar-10-batches-py"):
    """CIFAR-10 python batches as the real data set lays them out (data_batch_1..5, test_batch, batches.meta)."""
    out = root / folder
    out.mkdir(parents=True)
    x, y = shapes_data(5 * n_per_batch + n_test, 123)
    data = x.numpy().reshape(len(y), 3072)  # (N, 3, 32, 32) row-major -> 1024 R, 1024 G, 1024 B per row
    labels = y.tolist()
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    bounds = [*(i * n_per_batch for i in range(6)), len(y)]
    for i, name in enumerate(names):
        sl = slice(bounds[i], bounds[i + 1])
        label = f"training batch {i + 1} of 5" if i < 5 else "testing batch 1 of 1"
        d = {b"batch_label": label.encode(), b"labels": labels[sl], b"data": np.ascontiguousarray(data[sl]),
             b"filenames": [f"img_{j}.png".encode() for j in range(sl.start, sl.stop)]}
        _dump(d, out / name, protocol)
    meta = {b"num_cases_per_batch": n_per_batch, b"num_vis": 3072,
            b"label_names": [c.encode() for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                  "horse", "ship", "truck")]}
    _dump(meta, out / "batches.meta", protocol)
    return out, data, np.asarray(labels)


def _dump(obj, path, protocol):
    raw = pickle.dumps(obj, protocol=protocol)
    if protocol == 2:  # the real files were written by numpy 1.x, whose arrays name numpy.core.multiarray
        raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(raw)


def write_folder(root, classes=("circle", "square", "tri"), n=12, size=20, split=True, jpeg_every=4):
    """``train/CLASS/*.png`` and ``val/CLASS/*.png`` (every ``jpeg_every``-th a JPEG), or one tree."""
    from PIL import Image

    rng = np.random.default_rng(0)
    trees = {"train": n, "val": n // 2} if split else {"": n}
    for tree, count in trees.items():
        for k, c in enumerate(classes):
            d = root / tree / c
            d.mkdir(parents=True)
            for j in range(count):
                img = rng.integers(0, 60, (size, size + 4, 3), dtype=np.uint8)
                img[:, :, k % 3] += 150  # a class-dependent colour: learnable
                ext = "jpg" if jpeg_every and j % jpeg_every == 0 else "png"
                Image.fromarray(img).save(d / f"{j:03d}.{ext}")
    (root / ("train" if split else "") / classes[0] / "notes.txt").write_text("not an image")
    return root


# -- resnet_small ---------------------------------------------------------------------------------------------
def test_generated_images_are_balanced_seeded_and_cached():
    x, y = shapes_data(200, 5)
    assert x.shape == (200, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 20))
    shapes_data.cache_clear()
    x2, y2 = shapes_data(200, 5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = shapes_data(200, 6)
    assert not torch.equal(x, x3)
    assert 40 < float(x.float().mean()) < 215 and float(x.float().std()) > 30


def test_resnet_structure_and_depths():
    for depth, blocks in ((8, 3), (20, 9)):
        net = ResNetSmall(depth, 16)
        assert len(net.blocks) == blocks
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 1 + 2 * blocks + 2  # stem, two per block, two 1x1 projections
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert ResNetSmall(8, 4, n_classes=3)(torch.randn(1, 3, 8, 8)).shape == (1, 3)


def test_resnet_small_trains_evaluates_and_repeats_bit_for_bit():
    a, b = _train(TINY, seed=3), _train(TINY, seed=3)
    assert a.status == "completed" and a.summary["steps_done"] == 4
    assert 0.0 <= a.summary["val_accuracy"] <= 1.0
    assert [r["loss"] for r in a.steps] == [r["loss"] for r in b.steps]
    assert a.summary["val_loss"] == b.summary["val_loss"]
    c = _train(TINY, seed=4)
    assert [r["loss"] for r in c.steps] != [r["loss"] for r in a.steps]


def test_split_fixed_by_split_seed_init_by_seed_and_fraction():
    a, b = build_workload(TINY, seed=0), build_workload(TINY, seed=1)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train.x, b.train.x)
    assert any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True))
    other = build_workload({**TINY, "split_seed": 1}, seed=0)
    assert not torch.equal(a.val_x, other.val_x)
    half = build_workload({**TINY, "dataset_fraction": 0.5}, seed=0)
    assert len(half.train.y) == 80 and len(half.val_y) == 60
    # normalised with the training images' per-channel statistics
    xb, _ = next(iter(a.train))
    assert xb.dtype == torch.float32 and abs(float(a.val_x.mean())) < 0.3


@pytest.mark.parametrize("augment", [False, True])
def test_data_parallel_shards_tile_the_global_batch(augment):
    spec = {**TINY, "augment": augment}
    whole = build_workload(spec, seed=3)
    shards = [build_workload(spec, seed=3, rank=r, world_size=2) for r in range(2)]
    for (xw, yw), (x0, y0), (x1, y1) in list(zip(whole.train, *(s.train for s in shards), strict=True))[:3]:
        assert torch.equal(torch.cat([x0, x1]), xw) and torch.equal(torch.cat([y0, y1]), yw)


def test_augmentation_is_crop_and_flip_seeded_and_replayed_on_resume():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).reshape(2, 3, 5, 5)
    out = crop_flip(x, torch.tensor([[0, 2], [1, 0]]), torch.tensor([False, True]), pad=1)
    padded = F.pad(x, (1, 1, 1, 1))
    assert torch.equal(out[0], padded[0, :, 0:5, 2:7])
    assert torch.equal(out[1], padded[1, :, 1:6, 0:5].flip(-1))
    wl = build_workload({**TINY, "augment": True}, seed=0)
    state = wl.train.state_dict()
    first = [xb for xb, _ in wl.train]
    second = [xb for xb, _ in wl.train]
    assert not torch.equal(first[0], second[0])  # a new permutation and new crops every epoch
    wl.train.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(first, (xb for xb, _ in wl.train), strict=True))
    plain = build_workload(TINY, seed=0)
    xb_plain = next(iter(plain.train))[0]
    assert not torch.equal(first[0], xb_plain)  # same permutation (same seed), augmented pixels


def test_kfac_and_shampoo_step_on_the_resnet():
    wl = build_workload(TINY, seed=0)
    opt = build_optimizer({"name": "kfac"}, wl.model)
    convs = [m for m in wl.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(la.kind for la in opt.layers) == ["conv2d"] * len(convs) + ["linear"]
    for name in ("kfac", "shampoo"):
        res = _train(TINY, steps=3, policy=Policy.from_spec({"type": "single", "optimizer": {"name": name,
                                                                                                 "lr": 0.01}}))
        assert res.status == "completed" and all(np.isfinite(r["loss"]) for r in res.steps), name


def test_kfac_factors_of_resnet_convs_equal_explicit_patches():
    """A = mean over (sample, output position) of [a, 1][a, 1]ᵀ from explicit patch loops (no bias column:
    the ResNet's convs have none) for the stem (3x3, pad 1), a strided 3x3 conv (stride 2, pad 1) and the 1x1
    strided projection; G = mean of δδᵀ with δ = N·∂L/∂out from autograd; BatchNorm gets the SGD update."""
    torch.manual_seed(0)
    net = ResNetSmall(8, 4).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 12, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (3,), generator=g)
    opt = KFAC(net.parameters(), net, lr=0.1, momentum=0.0, damping=0.05, inverse_interval=1)
    block = net.blocks[1]
    convs = {"stem": net.stem[0], "strided": block.conv1, "projection": block.shortcut[0]}
    assert convs["strided"].stride == (2, 2) and convs["projection"].kernel_size == (1, 1)
    inputs, outputs = {}, {}
    hooks = []
    for name, conv in convs.items():
        def hook(mod, inp, out, name=name):
            inputs[name] = inp[0].detach().clone()
            out.retain_grad()
            outputs[name] = out
        hooks.append(conv.register_forward_hook(hook))
    bn = net.stem[1]
    bn_w0 = bn.weight.detach().clone()
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    bn_grad = bn.weight.grad.clone()
    opt.step()
    for h in hooks:
        h.remove()
    for name, conv in convs.items():
        a = _patches_loop(inputs[name], conv.kernel_size[0], conv.stride[0], conv.padding[0], 1, "zeros")
        a_ref = sum(torch.outer(r, r) for r in a) / len(a)
        delta = len(x) * outputs[name].grad
        d_rows = delta.permute(0, 2, 3, 1).reshape(-1, delta.shape[1])
        assert len(d_rows) == len(a), name
        g_ref = d_rows.t() @ d_rows / len(d_rows)
        st = opt.state[conv.weight]
        torch.testing.assert_close(st["A"], a_ref, rtol=1e-10, atol=1e-12, msg=name)
        torch.testing.assert_close(st["G"], g_ref, rtol=1e-10, atol=1e-12, msg=name)
    assert "A" not in opt.state[bn.weight]
    torch.testing.assert_close(bn.weight.detach(), bn_w0 - 0.1 * bn_grad)


# -- cifar10 --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_reads_the_python_batches_and_trains(tmp_path, protocol):
    folder, data, labels = write_cifar(tmp_path, protocol=protocol)
    spec = {"name": "cifar10", "data_path": str(tmp_path), **TINY_MODEL}  # the parent folder
    wl = build_workload(spec, seed=0)
    assert wl.train.x.shape == (200, 3, 32, 32) and wl.val_x.shape == (80, 3, 32, 32)
    # the layout: row i holds 1024 red, then green, then blue values, each plane row-major
    assert int(wl.train.x[7, 1, 2, 5]) == int(data[7, 1024 + 2 * 32 + 5])
    assert torch.equal(wl.train.y, torch.from_numpy(labels[:200]))
    mean = wl.train.x.double().div(255).mean(dim=(0, 2, 3)).float()
    torch.testing.assert_close(wl.train.mean, mean)
    same = build_workload({**spec, "data_path": str(folder)}, seed=0)  # the batches' own folder
    assert torch.equal(same.val_x, wl.val_x)
    sub = build_workload({**spec, "n_test": 30, "augment": False}, seed=0)
    assert len(sub.val_y) == 30 and not sub.train.augment and wl.train.augment
    res = _train({**spec, "n_test": 30})
    assert res.status == "completed" and 0.0 <= res.summary["val_accuracy"] <= 1.0


# -- image_folder ---------------------------------------------------------------------------------------------
def test_image_folder_with_train_and_val_trees(tmp_path):
    write_folder(tmp_path)
    spec = {"name": "image_folder", "data_path": str(tmp_path), "image_size": 16, **TINY_MODEL}
    wl = build_workload(spec, seed=0)
    assert wl.train.x.shape == (36, 3, 16, 16) and wl.val_x.shape == (18, 3, 16, 16)
    assert torch.equal(torch.bincount(wl.train.y), torch.tensor([12, 12, 12]))
    assert wl.model.fc.out_features == 3
    # class k is the tinted channel k: the reading and the class order (sorted names) are right
    raw = wl.train.x.float()
    for k in range(3):
        assert int(raw[wl.train.y == k].mean(dim=(0, 2, 3)).argmax()) == k
    res = _train(spec)
    assert res.status == "completed" and 0.0 <= res.summary["val_accuracy"] <= 1.0
    (tmp_path / "val").rename(tmp_path / "test")
    assert build_workload(spec, seed=0).val_x.shape == (18, 3, 16, 16)


def test_image_folder_single_tree_split_by_val_fraction(tmp_path):
    write_folder(tmp_path, split=False, n=10)
    spec = {"name": "image_folder", "data_path": str(tmp_path), "val_fraction": 0.2, **TINY_MODEL}
    wl = build_workload(spec, seed=0)
    assert len(wl.train.y) == 24 and len(wl.val_y) == 6 and wl.train.x.shape[-1] == 32
    other = build_workload({**spec, "split_seed": 1}, seed=0)
    assert not torch.equal(wl.val_x, other.val_x)
    assert torch.equal(build_workload(spec, seed=5).val_x, wl.val_x)


# -- errors ---------------------------------------------------------------------------------------------------
def _error(spec):
    with pytest.raises(ConfigError) as exc:
        build_workload(spec, seed=0)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def _rewrite(path, fn):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    path.write_bytes(pickle.dumps(fn(d)))


def test_cifar10_errors_are_one_line_and_name_the_path(tmp_path):
    base = {"name": "cifar10", **TINY_MODEL}
    assert "data_path: is required" in _error(base)
    missing = tmp_path / "nowhere"
    msg = _error({**base, "data_path": str(missing)})
    assert "no such folder" in msg and str(missing) in msg and "data_batch_1" in msg
    (tmp_path / "empty").mkdir()
    msg = _error({**base, "data_path": str(tmp_path / "empty")})
    assert "holds no CIFAR-10 batches" in msg and str(tmp_path / "empty") in msg
    folder, _, _ = write_cifar(tmp_path / "c")
    (folder / "test_batch").unlink()
    msg = _error({**base, "data_path": str(folder)})
    assert f"{folder} lacks test_batch" in msg
    folder, _, _ = write_cifar(tmp_path / "d")
    spec = {**base, "data_path": str(folder)}
    _rewrite(folder / "data_batch_3", lambda d: {b"images": d[b"data"], b"labels": d[b"labels"]})
    msg = _error(spec)
    assert str(folder / "data_batch_3") in msg and "keys ['images', 'labels']" in msg and 'b"data"' in msg
    _rewrite(folder / "data_batch_3", lambda d: {b"data": d[b"images"].astype(np.float32), b"labels": d[b"labels"]})
    assert "data is float32 (40, 3072)" in _error(spec)
    _rewrite(folder / "data_batch_3", lambda d: {b"data": d[b"data"].astype(np.uint8), b"labels": [11] * 40})
    assert "labels are not 40 ints in 0..9" in _error(spec)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    msg = _error(spec)
    assert f"cannot read {folder / 'data_batch_3'} as a CIFAR-10 batch" in msg
    # A global other than numpy's is refused. (Not `print`: under Ray, builtins.print is Ray's tqdm safe_print.)
    (folder / "data_batch_3").write_bytes(pickle.dumps(os.getcwd))
    assert "refused global posix.getcwd" in _error(spec)
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in _error({**base, "data_path": str(tmp_path / "file")})


def test_image_folder_errors_are_one_line_and_name_the_path(tmp_path):
    base = {"name": "image_folder", **TINY_MODEL}
    assert "data_path: is required" in _error(base)
    root = write_folder(tmp_path / "a")
    (root / "train" / "empty_class").mkdir()
    msg = _error({**base, "data_path": str(root)})
    assert f"class folder {root / 'train' / 'empty_class'} holds no images" in msg
    root = write_folder(tmp_path / "b")
    (root / "val").rename(root / "other")
    assert "has train/ but no val/ (or test/)" in _error({**base, "data_path": str(root)})
    root = write_folder(tmp_path / "c", classes=("only",), split=False)
    assert "has 1 class folder; expected at least 2" in _error({**base, "data_path": str(root)})
    root = write_folder(tmp_path / "d")
    (root / "val" / "extra").mkdir()
    (root / "val" / "circle" / "000.jpg").rename(root / "val" / "extra" / "000.jpg")
    assert "classes that train/ lacks: extra" in _error({**base, "data_path": str(root)})
    root = write_folder(tmp_path / "e")
    (root / "train" / "tri" / "001.png").write_bytes(b"broken")
    assert f"cannot read image {root / 'train' / 'tri' / '001.png'}" in _error({**base, "data_path": str(root)})
    (tmp_path / "f").mkdir()
    assert f"{tmp_path / 'f'} has no class folders" in _error({**base, "data_path": str(tmp_path / "f")})


def test_option_errors_are_one_line(tmp_path):
    write_cifar(tmp_path)
    base = {"name": "cifar10", "data_path": str(tmp_path)}
    for spec, text in [
        ({"name": "resnet_small", "depth": 9}, "workload.depth: must be 6n+2"),
        ({"name": "resnet_small", "width": 0}, "workload.width: must be >= 1"),
        ({"name": "resnet_small", "augment": "yes"}, "workload.augment: must be true or false"),
        ({**base, "n_test": 0}, "workload.n_test: must be >= 1"),
        ({"name": "image_folder", "data_path": str(tmp_path), "image_size": 4}, "workload.image_size: must be >= 8"),
    ]:
        with pytest.raises(ConfigError) as exc:
            validate_workload(spec)
        assert text in str(exc.value) and "\n" not in str(exc.value)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError) as exc:
            validate_workload({**base, "model": "resnet18"})
        msg = str(exc.value)
        assert "torchvision is not installed" in msg and "pip install 'hyperswitch[vision]'" in msg
        assert "torchvision 0.28 with torch 2.13" in msg and "\n" not in msg
    else:
        wl = build_workload({**base, "model": "resnet18", "batch_size": 16}, seed=0)
        assert wl.model(wl.val_x[:2]).shape == (2, 10)
        with pytest.raises(ConfigError, match="torchvision classification model name"):
            validate_workload({**base, "model": "no_such_net"})
