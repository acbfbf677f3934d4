"""The Python sweep API: what ``hyperswitch sweep`` does, from a notebook or a script.

    import hyperswitch as hs
    study = hs.sweep("search_spaces/quickstart.yaml", storage="runs", samples=4, seeds=2)
    study.trials.groupby("config_id")[study.metric].agg(["mean", "std"])
    hs.open_study("runs/quickstart").steps            # any study, finished or running, as pandas

``sweep`` runs in the calling process on the embedded local Ray (started and shut down by the call) or on a
cluster (``address``); Ctrl-C stops it with every finished trial kept, and ``resume=True`` continues it. Errors
in the space are :class:`hyperswitch.errors.ConfigError` (the same one-line messages as the command's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hyperswitch.results.reader import Study
from hyperswitch.search.space import SearchSpace, load_space, space_from_text


def as_space(space: str | Path | Mapping[str, Any] | SearchSpace) -> SearchSpace:
    """A validated :class:`SearchSpace` from a YAML file's path, a mapping with the file's keys, or a space."""
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        return space_from_text(yaml.safe_dump(dict(space), sort_keys=False), "<mapping>")
    return load_space(space)


def sweep(space: str | Path | Mapping[str, Any] | SearchSpace, *, storage: str | Path = "runs",
          name: str | None = None, samples: int | None = None, seeds: int | None = None, resume: bool = False,
          retry_errors: bool = False, warm_start: str | Path | None = None, address: str | None = None,
          verbose: bool = False, progress: bool | Callable[[str], None] = True,
          log: str | Sequence[str] | None = None) -> Study:
    """Run (or with ``resume`` continue) the sweep of ``space`` and return its study (finished trials, steps,
    events as pandas; ``study.meta["status"]`` is ``completed`` or ``interrupted``). The keywords are the
    command's options: ``storage`` (``--storage``: a folder or a URI such as ``s3://bucket/runs``), ``name``,
    ``samples``, ``seeds``, ``resume``, ``retry_errors``, ``warm_start`` (an earlier study's folder or name),
    ``address``, ``verbose``, ``log`` (``--log``: experiment trackers each finished trial is logged to, such as
    ``["mlflow", "tensorboard"]`` or ``"mlflow=http://host:5000"``). ``progress``: print the command's progress
    lines (True), print nothing (False), or a function that receives each line."""
    from hyperswitch import _ray
    from hyperswitch.search.runner import run_sweep

    started_here = not _ray.joins_cluster(address)  # an embedded Ray this call starts is this call's to shut down
    if callable(progress):
        out = progress
    elif progress:
        def out(line: str) -> None:
            print(line, flush=True)
    else:
        def out(line: str) -> None:
            return None
    try:
        return run_sweep(as_space(space), storage=storage, name=name, resume=resume, address=address,
                         verbose=verbose, out=out, samples=samples, seeds=seeds, retry_errors=retry_errors,
                         warm_start=warm_start, log=log)
    finally:
        if started_here:
            _ray.shutdown()
