"""Run by test_faults: a sweep on a two-node ``ray.cluster_utils.Cluster``; the second node is removed while
it runs trials. Prints a JSON line: whether a trial was running on the removed node."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import space_from_text

SPACE = """\
name: node_loss
workload: {name: digits_mlp, batch_size: 64, hidden: 32}
policy: {type: single, optimizer: {name: sgdm, lr: $lr}}
train: {steps: 600, eval_every: 20}
parameters:
  lr: {type: float, low: 0.01, high: 0.1, log: true}
search: {algorithm: random, samples: 3, seed: 0}
seeds: 2
resources: {workers: 1, cpus_per_worker: 1, max_failures: 3}
max_concurrent: 2
"""


def main(storage: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    node = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    study = Path(storage) / "node_loss"
    state = {"removed_while_running": False}

    def remove_later() -> None:
        # once some trial has checkpoints and two trials run (one on each node), drop the second node
        t0 = time.time()
        while time.time() - t0 < 120:
            parts = list((study / "parts").glob("*.steps.parquet")) if study.exists() else []
            ckpts = list((study / "tune").glob("session-*/*/checkpoint_*/state.pt")) if study.exists() else []
            if len(parts) >= 2 and len(ckpts) >= 2:
                state["removed_while_running"] = True
                cluster.remove_node(node, allow_graceful=False)
                return
            time.sleep(0.05)

    th = threading.Thread(target=remove_later, daemon=True)
    th.start()
    try:
        run_sweep(space_from_text(SPACE, "node_loss.yaml"), storage=storage, address=cluster.address,
                  out=lambda s: print(s, flush=True))
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps(state))


if __name__ == "__main__":
    main(sys.argv[1])
