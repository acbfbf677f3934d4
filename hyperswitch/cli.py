"""The ``hyperswitch`` command: sweep, studies, train, dashboard, report, export.

Bad input (a search space, a policy file, an option) prints one line naming the file, key, rule and value
to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hyperswitch import __version__
from hyperswitch.errors import ConfigError

EXAMPLES = """\
examples:
  hyperswitch sweep search_spaces/quickstart.yaml
  hyperswitch sweep search_spaces/quickstart.yaml --resume
  hyperswitch studies
  hyperswitch train policies/quickstart_switch.yaml --steps 300 --seed 0
  hyperswitch dashboard --storage runs
  hyperswitch report quickstart --out report/
"""


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``; the message states the rule and the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low} (got {text!r})")
        return value

    return parse


_positive, _nonneg = _int_at_least(1), _int_at_least(0)
STORAGE_HELP = ("folder that holds the studies (default: ./runs), or a URI that pyarrow.fs opens: s3://BUCKET/PREFIX "
                "(credentials and endpoint from the AWS environment variables), gs://..., file:///...")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hyperswitch",
        description="Search hyperparameters and optimizer-switching policies on Ray Tune + Optuna.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"hyperswitch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("sweep", help="run (or resume) the sweep of a search space",
                       description="Run the sweep of a search-space YAML on an embedded local Ray (or a cluster "
                       "with --address). Results go to STORAGE/NAME/ as Parquet files, written as trials finish.")
    s.add_argument("space", metavar="SPACE", help="search-space YAML file")
    s.add_argument("--address", help="address of an existing Ray cluster (default: start a local Ray)")
    s.add_argument("--storage", default="runs", help=STORAGE_HELP)
    s.add_argument("--name", help="study name (default: the space's name)")
    s.add_argument("--resume", action="store_true", help="continue the study: keep finished trials, run the rest")
    s.add_argument("--samples", type=_positive, help="number of configurations (overrides search.samples)")
    s.add_argument("--seeds", type=_positive, help="seeds per configuration (overrides seeds)")
    s.add_argument("--retry-errors", action="store_true",
                   help="with --resume: run the trials that failed (status error) again, from the start (trials "
                   "cut off by Ray always continue on --resume)")
    s.add_argument("--warm-start", metavar="STUDY",
                   help="an earlier study (folder, or name under --storage) on the same parameters and metric: its "
                   "configurations' mean results are told to the sampler first (tpe, gp, cmaes), never counted as "
                   "this study's; recorded in study.json (a --resume needs it not again)")
    s.add_argument("--log", action="append", metavar="TRACKER[=WHERE]",
                   help="log each finished trial (curves, events, parameters, final metrics) to an experiment "
                   "tracker; repeatable: mlflow (a SQLite store, STUDY/mlflow.db; mlflow=URI: another tracking "
                   "URI), tensorboard (event files in STUDY/tensorboard/TRIAL; tensorboard=DIR: in "
                   "DIR/STUDY/TRIAL), none; needs hyperswitch[trackers]. A resume without --log keeps the study's")
    s.add_argument("--verbose", action="store_true", help="show the trials' own output and Ray's logs")

    st = sub.add_parser("studies", help="list the studies under the storage folder",
                        description="List studies: name, status, trials done, best metric.")
    st.add_argument("--storage", default="runs", help=STORAGE_HELP)
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")

    t = sub.add_parser("train", help="train one policy on one workload and print the final metrics",
                       description="Train a policy file on a workload and print the final metrics, the switch "
                       "events and, for a policy with a switch rule, whether it fired and what it saw (an adaptive "
                       "rule's lowest statistic and where, when it did not fire).")
    t.add_argument("policy", metavar="POLICY", help="policy YAML file")
    t.add_argument("--workload", help="workload name (default: the policy file's workload, else digits_mlp)")
    t.add_argument("--steps", type=_positive, help="training steps (default: the policy file's, else 300)")
    t.add_argument("--seed", type=_nonneg, default=0, help="seed (default 0)")
    t.add_argument("--workers", type=_positive, default=1,
                   help="data-parallel workers (default 1: in this process; more: a worker group on Ray, same "
                   "global batch size)")
    t.add_argument("--gpu", action="store_true", help="train on a GPU (one per worker; NCCL between workers)")
    t.add_argument("--address", help="Ray cluster for --workers > 1 (default: start a local Ray)")
    t.add_argument("--json", action="store_true", help="print the final metrics, switch events and the switch "
                   "rule's report ('switch') as JSON")
    t.add_argument("--threads", type=_positive,
                   help="torch CPU threads per worker (default: an exported policy's threads_per_worker, the "
                   "sweep's, so that its trial is repeated bit for bit; else torch's default)")

    d = sub.add_parser("dashboard", help="serve the parameter-study dashboard (Dash) on 127.0.0.1:8050",
                       description="Serve the Dash dashboard of the studies under the storage folder: studies, "
                       "parameter study, learning curves, switching, memory and time, ablations, learning-rate rules. "
                       "Running sweeps are shown as they progress.")
    d.add_argument("--storage", default="runs", help=STORAGE_HELP)
    d.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; another address warns: the dashboard has no login)")
    d.add_argument("--port", type=_port, default=8050, help="port (default 8050)")
    d.add_argument("--policies", default="policies",
                   help="folder the study pages' export button writes policy files into (default: ./policies)")
    d.add_argument("--verbose", action="store_true", help="log every HTTP request")

    r = sub.add_parser("report", help="write a study's figures as standalone HTML (and PNG where possible)",
                       description="Write the dashboard's figures of one study as standalone HTML files with an "
                       "index.html (PNG too when a static renderer such as kaleido is installed).")
    r.add_argument("study", metavar="STUDY", help="study name under --storage, or a study folder")
    r.add_argument("--out", metavar="DIR", help="folder to write the HTML files (and full-size PNG) into")
    r.add_argument("--png", metavar="DIR", help="write the chosen figures (--figures) as small PNG files, "
                   "900 px wide, into DIR (e.g. docs/figures/STUDY); needs kaleido")
    r.add_argument("--figures", default="*", metavar="NAMES",
                   help="with --png: comma-separated figure names or shell patterns (default: all), e.g. "
                   "'comparison_*' or 'comparison_variant,ablation_variant'")
    r.add_argument("--reference", metavar="ARM",
                   help="the arm the comparison figures compare every arm with, instead of the default (a "
                   "baseline-looking arm): its value (e.g. iomt_prose: every factor with such an arm) or its full "
                   "label ('variant = iomt_prose': that factor only); a compared factor without that arm keeps its "
                   "default (said in the output); an arm of no compared factor is an error listing the arms")
    r.add_argument("--tuned", metavar="NAMES",
                   help="comma-separated parameters (e.g. lr_scale,damping): the comparison figures put each arm at "
                   "its own best cell of them (best mean over seeds, failed runs counted as the worst) and pair "
                   "those cells' runs by seed; the table names each arm's cell and flags one on the grid's edge")
    r.add_argument("--holdout", action="store_true",
                   help="with --tuned: choose each arm's cell on the first half of the sorted seeds and measure the "
                   "differences on the other half (without it the same seeds choose and measure: optimistic)")
    r.add_argument("--split", metavar="NAME",
                   help="draw the comparison figures per value of this factor (e.g. a design's cell), instead of "
                   "the default (a task or data set parameter, if any); its own comparison is not drawn")
    r.add_argument("--storage", default="runs", help=STORAGE_HELP)
    r.add_argument("--self-contained", action="store_true",
                   help="embed plotly.js in every HTML file (default: one shared plotly.min.js in DIR)")

    e = sub.add_parser("export", help="write a study's best policy (or the N best) as policy files",
                       description="Choose a study's best configuration and write it as a policy YAML (under "
                       "policies/ by default) that hyperswitch train and hyperswitch.load_policy read, with its "
                       "provenance: study, configuration and trial ids, the metric's mean, spread and seeds, "
                       "workload, versions and date. An unfinished study exports from its finished trials.")
    e.add_argument("study", metavar="STUDY", help="study name under --storage, or a study folder")
    e.add_argument("--storage", default="runs", help=STORAGE_HELP)
    e.add_argument("--metric", help="results metric to choose by (default: the study's own metric)")
    e.add_argument("--mode", choices=("max", "min"),
                   help="direction of the metric (default: the metric's own; a contradicting mode is an error)")
    e.add_argument("--select", choices=("mean", "best", "pareto"), default="mean",
                   help="mean: best mean over a configuration's seeds (default; one lucky seed cannot win); "
                   "best: the single best trial; pareto: the best mean within --max-time-ratio x the fastest "
                   "configuration's mean wall time, or, on a multi-objective study, every configuration on the "
                   "Pareto front of its objectives (seeds' means), one file each. A constrained study exports only "
                   "configurations that satisfy its constraints")
    e.add_argument("--max-time-ratio", type=float, metavar="R",
                   help="with --select pareto: the time budget as a multiple of the fastest configuration's mean "
                   "wall time (>= 1)")
    e.add_argument("--top", type=int, metavar="N", help="write the N best configurations, one file each (default 1; "
                   "the whole front with --select pareto on a multi-objective study)")
    e.add_argument("-o", "--output", metavar="FILE",
                   help="file to write (default policies/<study>_<config>.yaml); a folder (ending in /) with --top")
    e.add_argument("--force", action="store_true", help="overwrite existing files")
    o = sub.add_parser("export-optuna", help="write a study into an Optuna storage (optuna-dashboard, "
                       "optuna.visualization)",
                       description="Write a study as a new Optuna study: one trial per configuration, its values the "
                       "means over the configuration's seeds of the study's objectives (one direction each: a "
                       "multi-objective study's best_trials are its Pareto front), its constraint values where the "
                       "study has constraints, its user attributes the seeds' values and the other metrics' means. "
                       "Open it with optuna-dashboard STORAGE or optuna.load_study.")
    o.add_argument("study", metavar="STUDY", help="study name under --storage, or a study folder")
    o.add_argument("--to", required=True, metavar="STORAGE",
                   help="Optuna storage: sqlite:///FILE.db (or another RDB URL), or journal:FILE.log")
    o.add_argument("--storage", default="runs", help=STORAGE_HELP)
    o.add_argument("--metric", help="one results metric the trials' value is (default: the study's own objectives)")
    o.add_argument("--name", help="the Optuna study's name (default: the study's)")
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    """As the program (``hyperswitch sweep``): the sweep runs in a child process that the command watches, so that
    a Ray that dies under it ends the command with one line and status 75 (``search.supervise``)."""
    if not getattr(args, "program", False):
        return _sweep(args)
    from hyperswitch.search.supervise import supervised

    def run() -> int:
        try:
            return _sweep(args)
        except ConfigError as exc:
            print(f"hyperswitch: error: {exc}", file=sys.stderr, flush=True)
            return 2

    return supervised(run)


def _sweep(args: argparse.Namespace) -> int:
    from hyperswitch.search.runner import run_sweep
    from hyperswitch.search.space import load_space
    from hyperswitch.search.supervise import EXIT_RAY_LOST

    space = load_space(args.space)
    study = run_sweep(space, storage=args.storage, name=args.name, resume=args.resume, address=args.address,
                      verbose=args.verbose, samples=args.samples, seeds=args.seeds,
                      retry_errors=args.retry_errors, warm_start=args.warm_start, log=args.log,
                      out=lambda s: print(s, flush=True))
    if study.meta.get("status") != "interrupted":
        return 0
    # 130: the shell's code for Ctrl-C; 75 (EX_TEMPFAIL): Ray cut trials off or went away, --resume continues
    return EXIT_RAY_LOST if study.meta.get("interrupted_by") == "ray" else 130


def _fmt_metric(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def cmd_studies(args: argparse.Namespace) -> int:
    from hyperswitch.results.reader import list_studies, open_study

    rows: list[dict[str, Any]] = []
    for path in list_studies(args.storage):
        try:
            study = open_study(path, include_running=True)
        except Exception as exc:  # one broken study must not hide the others
            rows.append({"name": path.name, "status": f"unreadable: {exc}", "done": "-", "total": "-",
                         "metric": "-", "best": None, "best_trial": "-"})
            continue
        metrics, modes = study.objectives
        if len(metrics) > 1:  # several objectives: the Pareto front of the configurations instead of a best
            rows.append({
                "name": study.name, "status": study.meta.get("status", "?"), "done": len(study.finished()),
                "total": study.meta.get("n_trials_total", "?"), "metric": ",".join(metrics),
                "best": None, "best_trial": "-", "updated": study.meta.get("updated", ""),
                "front": _front_ids(study, metrics, modes),
            })
            continue
        best = study.best_trial()
        rows.append({
            "name": study.name, "status": study.meta.get("status", "?"), "done": len(study.finished()),
            "total": study.meta.get("n_trials_total", "?"), "metric": study.metric,
            "best": best[study.metric] if best else None, "best_trial": best["trial_id"] if best else "-",
            "updated": study.meta.get("updated", ""),
        })
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        from hyperswitch.results.fs import display, open_storage

        print(f"no studies under {display(open_storage(args.storage))}")
        return 0
    header = f"{'study':<28} {'status':<12} {'trials':>9}  {'metric':<18} {'best':>8}  best trial"
    print(header)
    for r in rows:
        if "front" in r:  # a multi-objective study: the size of its Pareto front and its configurations
            front = r["front"]
            size, which = (f"front {len(front)}", " ".join(front[:6]) + (" ..." if len(front) > 6 else "")) \
                if front else ("-", "-")
            print(f"{r['name']:<28} {r['status']:<12} {str(r['done']) + '/' + str(r['total']):>9}  "
                  f"{r['metric']:<18} {size:>8}  {which}")
            continue
        print(f"{r['name']:<28} {r['status']:<12} {str(r['done']) + '/' + str(r['total']):>9}  {r['metric']:<18} "
              f"{_fmt_metric(r['best']):>8}  {r['best_trial']}")
    return 0


def _front_ids(study: Any, metrics: list[str], modes: list[str]) -> list[str]:
    """The config ids on a multi-objective study's Pareto front (seeds' means; feasible ones where constrained),
    as ``export --select pareto`` finds it; none while no configuration qualifies."""
    from hyperswitch.results.objectives import study_constraints
    from hyperswitch.results.select import select_configurations

    try:
        sel = select_configurations(study.finished(), metrics[0], modes[0], "pareto", top=10**9,
                                    objectives=list(zip(metrics, modes, strict=True)),
                                    constraints=study_constraints(study.meta))
    except ConfigError:
        return []
    return [c.config_id for c in sel.choices]


def cmd_train(args: argparse.Namespace) -> int:
    from hyperswitch.switching import load_policy
    from hyperswitch.train.spec import TrainSpec
    from hyperswitch.workloads import validate_workload

    policy = load_policy(args.policy)
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--gpu", "no CUDA device is available", True)
    workload = dict(policy.workload or {"name": "digits_mlp"})
    if args.workload and args.workload != workload.get("name"):
        workload = {"name": args.workload}
    workload = validate_workload(workload, "--workload")
    if workload.get("batch_size") and workload["batch_size"] % args.workers:
        raise ConfigError("--workers", f"the global batch size {workload['batch_size']} must be divisible by the "
                          "number of workers", args.workers)
    given = dict(policy.train or {"steps": 300})
    if args.steps:
        given.pop("epochs", None)
        given["steps"] = args.steps
    train = TrainSpec.from_mapping(given, "train")
    from hyperswitch.train.driver import run_job

    threads = args.threads or policy.provenance.get("threads_per_worker")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError("provenance.threads_per_worker", "must be an integer >= 1", threads, file=args.policy)
    made_with = policy.provenance.get("workers")
    if made_with is not None and made_with != args.workers:
        print(f"note: this policy's trials ran on {made_with} worker(s); with --workers {args.workers} the run is "
              "the same up to float round-off, not bit for bit", file=sys.stderr)
    out = run_job(workload, policy.spec, train, args.seed, workers=args.workers, gpu=args.gpu,
                  address=args.address, threads=threads)
    s = out["summary"]
    if args.json:
        import json

        print(json.dumps({"policy": str(args.policy), "name": policy.name, "workload": workload["name"],
                          "seed": args.seed, "workers": args.workers, "gpu": args.gpu, "status": out["status"],
                          "summary": s, "events": out["events"], "switch": out.get("switch")}, indent=2,
                         default=str))
        return 0
    where = f"{args.workers} worker{'s' if args.workers > 1 else ''}, {'GPU' if args.gpu else 'CPU'}"
    print(f"policy {policy.name} ({policy.type}: {', '.join(policy.optimizer_names())}) on {workload['name']}, "
          f"seed {args.seed}, {where}: {out['status']}")
    for ev in out["events"]:
        print(f"  step {ev['step']:>6}  {ev['kind']:<9} {ev['detail']}")
    from hyperswitch.results.schema import WORKLOAD_METRICS
    from hyperswitch.switching import explain_switch

    said = explain_switch(out.get("switch"))
    if said:
        print(f"  {said}")
    for k in ("steps_done", "train_loss", "val_loss", "val_accuracy", "best_val_accuracy", "val_recon_error",
              "time_to_target_s", "steps_to_target", "wall_time_s", "samples_per_s", "peak_memory_bytes",
              "memory_source", "peak_rss_bytes"):
        if k in WORKLOAD_METRICS and s.get(k) is None:
            continue  # a metric of other workloads
        print(f"  {k:<18} {_fmt_metric(s.get(k))}")
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 65535 (got {text!r})")
    return value


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_dashboard(args: argparse.Namespace) -> int:
    import logging
    import socket

    from hyperswitch.results.fs import open_storage

    storage = open_storage(args.storage)  # a folder, or a storage URI (a bad one: one line, exit 2)
    if not _is_loopback(args.host):
        print(f"hyperswitch: warning: --host {args.host} is not a loopback address: anyone who can reach this machine "
              f"on port {args.port} can read every study under {storage.resolve()} (the dashboard has no login)",
              file=sys.stderr, flush=True)

    def taken(exc: OSError) -> ConfigError:
        return ConfigError("--port", f"cannot listen on {args.host}:{args.port} ({exc.strerror})", args.port)

    # A quick probe before the app is built. SO_REUSEADDR as the server itself binds (werkzeug, like socketserver,
    # sets it): without it the probe failed for a minute after a restart, on the old server's TIME_WAIT sockets.
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise taken(exc) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    from werkzeug.serving import make_server

    from dashboards.app import create_app

    app = create_app(storage, policies=args.policies)
    for handler in list(app.logger.handlers):  # Dash's own stdout handler: its messages went out twice
        app.logger.removeHandler(handler)
    try:
        # werkzeug's server for Dash's Flask app, as app.run would start it, without Dash's and Flask's banners
        server = make_server(args.host, args.port, app.server, threaded=True)
    except OSError as exc:
        raise taken(exc) from None
    if not storage.is_dir():
        print(f"hyperswitch dashboard: {storage.resolve()} does not exist yet; studies appear as sweeps write them",
              flush=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"hyperswitch dashboard: studies under {storage.resolve()} at http://{host}:{args.port}/ "
          "(Ctrl-C to stop)", flush=True)
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack to stderr (a server that will not stop)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hyperswitch.figures.report import png_renderer, write_report
    from hyperswitch.results.cache import StudyReadError
    from hyperswitch.results.names import find_study
    from hyperswitch.results.store import StudyStore

    if not args.out and not args.png:
        raise ConfigError("--out", "give --out DIR (HTML files), --png DIR (small PNG files) or both", None,
                          show_value=False)
    for key, folder in (("--out", args.out), ("--png", args.png)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise ConfigError(key, "must be a folder (a file of that name exists)", folder)
    if args.png and not png_renderer():
        raise ConfigError("--png", "needs a static image renderer: pip install kaleido", args.png)
    path = find_study(args.study, args.storage)  # a study folder, or a plain name under --storage
    StudyStore(path).check_readable()  # a truncated table: one line, exit 2, no half report
    patterns = [p.strip() for p in args.figures.split(",") if p.strip()] or ["*"]
    references: dict[str, str] = {}
    said: list[str] = []  # what the options set, printed once every option has been checked
    if args.reference is not None:  # checked before anything is written
        from hyperswitch.figures.report import comparison_slugs, resolve_references

        # the comparisons drawn: every one when there is an HTML report (--out), those --figures selects otherwise
        references, kept = resolve_references(path, args.reference, ["*"] if args.out else patterns)
        said += [f"{' and '.join(comparison_slugs(f))}: reference {arm}" for f, arm in references.items()]
        said += [f"{' and '.join(comparison_slugs(f))}: reference {arm} (the default: {args.reference!r} is no arm "
                 f"of {f})" for f, arm in kept.items()]
    tune: list[str] = []
    if args.holdout and args.tuned is None:
        raise ConfigError("--holdout", "applies with --tuned NAMES (the parameters each arm is tuned over)", None,
                          show_value=False)
    if args.tuned is not None:  # checked before anything is written
        from hyperswitch.figures.report import resolve_tuned

        tune = resolve_tuned(path, args.tuned, ["*"] if args.out else patterns)
        said.append(f"comparison figures: each arm at its own best cell of {', '.join(tune)}, "
                    + ("chosen on the first half of the seeds, differences on the other half (held out)"
                       if args.holdout else
                       "chosen and measured on the same seeds (optimistic; --holdout for held-out seeds)"))
    split: str | None = None
    if args.split is not None:  # checked before anything is written
        from hyperswitch.figures.report import resolve_split

        split = resolve_split(path, args.split, tune, ["*"] if args.out else patterns)
        said.append(f"comparison figures: per value of {split}")
    for line in said:
        print(line)
    if args.png:
        from hyperswitch.figures.report import write_png_files

        try:
            shots = write_png_files(path, args.png, patterns, references=references, tune_over=tune,
                                    holdout=args.holdout, split=split)
        except ValueError as exc:
            raise ConfigError("--figures", str(exc), args.figures, show_value=False) from None
        except StudyReadError as exc:
            print(f"hyperswitch: error: {exc}", file=sys.stderr)
            return 2
        written = [e for e in shots if e.png]
        print(f"wrote {len(written)} PNG file(s) to {Path(args.png).resolve()}: "
              + ", ".join(e.png.name for e in written if e.png))
        for e in shots:
            if not e.png:
                print(f"  not written: {e.slug}: {e.reason or 'the renderer failed (see the log above)'}")
        if not args.out:
            return 0
    out = Path(args.out)
    try:
        entries = write_report(path, out, self_contained=args.self_contained, references=references,
                               tune_over=tune, holdout=args.holdout, split=split)
    except StudyReadError as exc:
        print(f"hyperswitch: error: {exc}", file=sys.stderr)
        return 2
    done = [e for e in entries if e.html]
    pngs = [e for e in entries if e.png]
    print(f"wrote {len(done)} figures as HTML{f' ({len(pngs)} also as PNG)' if pngs else ''} to "
          f"{out.resolve()}; open {out.resolve() / 'index.html'}")
    for e in entries:
        if not e.html:
            print(f"  not applicable: {e.title}: {e.reason}")
    if not png_renderer():
        print("  PNG: not written (no static renderer such as kaleido is installed)")
    elif len(pngs) < len(done):
        print(f"  PNG: {len(done) - len(pngs)} of {len(done)} not written (the renderer failed; see the log above)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hyperswitch.export import export_study

    results = export_study(args.study, storage=args.storage, metric=args.metric, mode=args.mode, select=args.select,
                           top=args.top, output=args.output, force=args.force, max_time_ratio=args.max_time_ratio)
    for note in results[0].notes if results else []:
        print(f"note: {note}")
    for r in results:
        c, p = r.choice, r.path
        spread = f" ± {c.std:.4g}" if c.std is not None else ""
        prov = r.document["provenance"]
        result = f"{prov['metric']} {c.mean:.4g}{spread}"
        if c.objectives:
            result = ", ".join(f"{m} {mean:.4g}" + (f" ± {std:.4g}" if std is not None else "")
                               for m, mean, std, _ in c.objectives)
        print(f"wrote {p}: configuration {c.config_id} (rank {c.rank}), {result} over "
              f"{c.n} seed(s) {list(c.seeds)}; trials {', '.join(c.trial_ids)}")
        if prov.get("parameters"):
            print("  " + ", ".join(f"{k}={v}" for k, v in prov["parameters"].items()))
        seed = c.seeds[0] if c.seeds else 0
        print(f"  repeat seed {seed}: hyperswitch train {p} --seed {seed}")
    return 0


def cmd_export_optuna(args: argparse.Namespace) -> int:
    from hyperswitch.export.optuna_study import export_optuna

    r = export_optuna(args.study, args.to, storage=args.storage, metric=args.metric, name=args.name)
    failed = f" ({r.n_failed} with no finite value: FAIL)" if r.n_failed else ""
    if len(r.metrics) > 1:
        value = "values = means over its seeds of " + ", ".join(
            f"{m} ({d})" for m, d in zip(r.metrics, r.directions, strict=True))
    else:
        value = f"value = mean of {r.metric} over its seeds ({r.direction})"
    print(f"wrote Optuna study {r.study_name!r} to {r.storage}: {r.n_trials} trials, one per configuration{failed}; "
          + value)
    if r.constraints:
        print(f"  constraints {'; '.join(r.constraints)} (the seeds' means): {r.n_infeasible} complete trial(s) "
              "infeasible")
    print(f"  open it: optuna-dashboard {r.storage.removeprefix('journal:')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.program = argv is None  # run as the `hyperswitch` program, not called from Python
    handlers = {"sweep": cmd_sweep, "studies": cmd_studies, "train": cmd_train, "dashboard": cmd_dashboard,
                "report": cmd_report,
                "export": cmd_export, "export-optuna": cmd_export_optuna}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"hyperswitch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
