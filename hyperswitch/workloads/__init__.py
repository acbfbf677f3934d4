"""Workloads by name: models and data that need no download. Importing registers them.

Workloads (options with their defaults; each module's docstring has the details):

- ``digits_mlp``: MLP on scikit-learn's 8x8 digits. batch_size 64, hidden 128, depth 1.
- ``digits_cnn``: two-Conv2d CNN on the digits (K-FAC sees Conv2d layers). batch_size 64, channels 8.
- ``tabular``: MLP on a standardised bundled table. dataset breast_cancer | wine, batch_size 32, hidden 64,
  depth 1.
- ``synthetic_2d``: a 2-D test function whose 2 parameters are the point. function rosenbrock | beale |
  himmelblau | griewank | ackley, start null (the function's usual start), steps_per_epoch 100.
- ``least_squares``: linear regression on seeded synthetic data (003). n 1024, d 20, noise 0.1, condition 10,
  batch_size 64.
- ``char_lm``: GPT-style character model on the standard library's own sources. chars 200000, context 64,
  width 64, layers 2, heads 4, batch_size 32.
- ``mlp_wide``: 004's wide MLP (ReLU) on labels of a fixed random teacher network over Gaussian inputs (seeded by
  split_seed). width 2048, depth 2, input_dim 128, classes 10, n_train 50000, n_val 10000, batch_size 64,
  teacher_width 64, teacher_depth 4, label_noise 0.0.
- ``text_lm``: GPT-style model on local text: the standard library's sources and docs, or the file/folder
  ``data_path`` (.txt/.py/.md/.rst, recursively). data_path null, tokens byte | char, max_bytes 1000000,
  context 64, width 64, layers 2, heads 4, batch_size 32.
- ``curves_autoencoder``: deep autoencoder 784-400-200-100-50-25-6 (mirrored, sigmoid) on generated CURVES
  (Hinton & Salakhutdinov 2006); regression (``val_loss``, plus ``val_recon_error``). n_train 20000, n_test 10000,
  batch_size 256.
- ``resnet_small``: CIFAR-style ResNet-(6n+2) with BatchNorm on generated 32x32 colour images (5 shapes x 2
  stripe orientations, random colours, position, scale, noise). depth 8, width 16, batch_size 16, n_train
  10000, n_test 2000, augment false.
- ``cifar10``: CIFAR-10 from its python batches at ``data_path`` (the cifar-10-batches-py folder or its
  parent). model resnet_small | a torchvision model name, depth 20, width 16, batch_size 128, augment true,
  n_test null (all of test_batch).
- ``image_folder``: a CLASS/IMAGE tree of PNG/JPEG files at ``data_path`` (train/ and val/ or test/ trees, or one
  tree split by val_fraction), resized to image_size 32. model resnet_small, depth 8, width 16, batch_size 32,
  augment false.
- ``transfer``: pre-trained on digits 0-4, tuned on 5-9. mode head | full, batch_size 32, hidden 64,
  pretrain_epochs 30.
- ``package.module:function``: a user's own (``workloads.user``). The function's keyword defaults,
  batch_size 64.

All but ``synthetic_2d`` also take ``dataset_fraction`` (1.0) and ``split_seed`` (0: fixes the train/validation
split, never the trial seed); those with a fixed split take ``val_fraction``. ``synthetic_2d`` and
``least_squares`` are regression tasks: ``val_accuracy`` is null, search on ``val_loss``.
"""

from hyperswitch.workloads import (  # noqa: F401  (importing a module registers its workloads)
    char_lm,
    curves,
    digits,
    digits_cnn,
    image_files,
    least_squares,
    mlp_wide,
    resnet_small,
    synthetic,
    tabular,
    text_lm,
    transfer,
)
from hyperswitch.workloads._base import (
    Batches,
    Workload,
    build_workload,
    check_workload_keys,
    get_workload,
    register_workload,
    validate_workload,
    workload_names,
)

__all__ = [
    "Batches",
    "Workload",
    "build_workload",
    "check_workload_keys",
    "get_workload",
    "register_workload",
    "validate_workload",
    "workload_names",
]
