"""``hyperswitch report STUDY --out DIR``: the dashboard's figures as standalone HTML files (and PNG where a
static renderer, kaleido, is installed) with an ``index.html`` that lists them and says which views do not apply.
``--png DIR [--figures PATTERN,...]``: chosen figures only, as small PNG files (900 px wide) to commit.

Every figure comes from the same pure functions as the dashboard, drawn with the dashboard's default controls
(the study's metric, its varied parameters, policy grouping, standard deviation bands).

``--reference ARM`` (:func:`resolve_references`): the comparison figures (``comparison_<factor>`` and its
``_table``) compare every arm with ARM instead of the default reference (a baseline-looking arm,
:func:`hyperswitch.figures.comparisons.default_reference`). ARM is an arm's full label (``variant = iomt_prose``:
that factor only) or its value (``iomt_prose``: every factor with an arm of that value). Among the comparisons
the report draws (all of them with ``--out``; those ``--figures`` selects with ``--png`` alone), a factor without
that arm keeps its default reference (the command says which); an ARM that is an arm of none of them, or a full
label naming a factor without that arm, is an error that lists their arms, and nothing is written.

``--tuned NAMES [--holdout]`` (:func:`resolve_tuned`): the comparison figures put each arm at its own best cell of
those parameters (``lr_scale,damping``) and pair the chosen cells' runs by seed (``tune_over`` of
:func:`hyperswitch.figures.comparisons.comparison_data`; the table's "tuned cell" column names each arm's cell and
whether it lies on the grid's edge); with ``--holdout`` the cells are chosen on the first half of the sorted seeds
and the differences measured on the other half, without it the figures say the differences are optimistic. The
comparison of a factor that is one of NAMES is not drawn (the index says why), and NAMES do not split the
comparisons. A name that is not a parameter of the study, ``seed``, or NAMES that leave no comparison to draw, is
an error (nothing is written).

``--split NAME`` (:func:`resolve_split`): the comparison figures compare the arms of each factor separately for
every value of NAME (a cell of a design, say), instead of the default split (a task or data set parameter, when
the study has one); the comparison of NAME itself is not drawn. NAME must be a compared factor of the study.
"""

from __future__ import annotations

import fnmatch
import html
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go

from hyperswitch.config.validate import writable_folder
from hyperswitch.errors import ConfigError
from hyperswitch.figures import ablations as fa
from hyperswitch.figures import comparisons as fcmp
from hyperswitch.figures import curves as fc
from hyperswitch.figures import lr_rules as fl
from hyperswitch.figures import memory as fm
from hyperswitch.figures import parameter as fp
from hyperswitch.figures import switching as fs
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import StudyInfo, StudyReadError, study_info, study_table
from hyperswitch.results.fs import ObjectPath

log = logging.getLogger("hyperswitch.report")


class Entry(NamedTuple):
    slug: str  # file name stem
    section: str
    title: str
    html: Path | None
    png: Path | None
    reason: str | None  # why there is no figure (the view does not apply, or the study could not be read)


def _views(info: StudyInfo, references: Mapping[str, str] | None = None, tune_over: Sequence[str] = (),
           holdout: bool = False, split: str | None = None) -> Iterator[tuple[str, str, str, Callable[[], go.Figure]]]:
    """(slug, section, title, build) for every default view of the study; ``references``: factor -> the arm its
    comparison figures take as the reference (:func:`resolve_references`; the others: the default); ``tune_over``
    and ``holdout``: the comparisons are tuned (:func:`resolve_tuned`); ``split``: the comparisons are drawn per
    value of that factor (:func:`resolve_split`; default: :func:`hyperswitch.figures.ablations.default_split`)."""
    references = dict(references or {})
    tune = list(tune_over)
    t, metric, mode = info.trials, info.metric, info.mode
    params = info.varied_parameters
    root = info.path

    def events() -> pd.DataFrame:
        return study_table(root, "events", ["step", "kind"])

    for p in params:
        def sensitivity(p: str = p) -> go.Figure:
            return fp.sensitivity_figure(fp.sensitivity_data(t, p, metric, "std"))
        yield (f"parameter_{p}", "Parameter study", f"{metric} vs {p}", sensitivity)
    if len(params) >= 2:
        yield ("parameter_heatmap", "Parameter study", f"{metric}: {params[1]} x {params[0]}",
               lambda: fp.heatmap_figure(fp.heatmap_data(t, params[0], params[1], metric, mode)))
    if len(params) >= 3:
        yield ("parameter_parallel", "Parameter study", "parallel coordinates",
               lambda: fp.parallel_figure(fp.parallel_data(t, params, metric)))
    sampled = [p for p in info.meta.get("sampled_names", params) if p in params]
    yield ("parameter_importance", "Parameter study", "parameter importance",
           lambda: fp.importance_figure(fp.importance_data(t, sampled, metric, mode, "auto", info.distributions)))
    group = params[0] if params else fc.POLICY
    for y in ("loss", "val_accuracy"):
        def curves(y: str = y) -> go.Figure:
            steps = study_table(root, "steps", ["step", y])
            sw = _first_switch(events())
            return fc.curves_figure(fc.curves_data(steps, fc.run_groups(t, group), sw, x="step", y=y,
                                                   group_by=group))
        yield (f"curves_{y}", "Learning curves", f"{y} vs step by {group}", curves)

    def switch_fig() -> go.Figure:
        points = fs.switch_points(t, events(), study_table(root, "steps", ["step", "epoch"]))
        if not points["switched"].any():
            raise NotApplicable("no finished run of this study switched optimizer")
        return fs.switch_figure(points, t, ["workload", *params[:2]])
    yield ("switching_points", "Switching", "switch step per configuration", switch_fig)

    def iomt() -> go.Figure:
        ev = study_table(root, "events", ["step", "kind", "detail"])
        runs = fs.iomt_runs(ev)
        if not runs:
            raise NotApplicable("this study has no IOMT cycles (no iomt policy)")
        return fs.iomt_timeline_figure(fs.iomt_timeline_data(ev, runs[0]))
    yield ("switching_iomt", "Switching", "IOMT timeline (first run)", iomt)

    labels = fc.run_groups(t, fc.POLICY)
    labels.index = t.index
    yield ("memory_peak", "Memory and time", "peak memory per policy",
           lambda: fm.group_bars_figure(fm.group_bars_data(t, labels, "peak_memory_bytes", by="policy"),
                                        "peak memory per policy"))

    def phase() -> go.Figure:
        fin = info.finished()
        lab = fc.run_groups(fin, fc.POLICY)
        return fm.phase_memory_figure(fm.phase_memory_data(study_table(root, "steps", ["optimizer", "memory_bytes"]),
                                                           lab))
    yield ("memory_phase", "Memory and time", "peak memory per policy and phase", phase)
    yield ("memory_time_to_target", "Memory and time", "time to target per policy",
           lambda: fm.group_bars_figure(fm.group_bars_data(t, labels, "time_to_target_s", by="policy"),
                                        "time to target accuracy per policy"))
    own = fm.study_pareto_metrics(info.meta)  # a multi-objective study: its first two objectives
    if own is None:
        yield ("memory_pareto", "Memory and time", "accuracy vs wall time",
               lambda: fm.pareto_figure(fm.pareto_data(t, "val_accuracy", "wall_time_s")))
    else:
        yield ("memory_pareto", "Memory and time", f"{own[0]} vs {own[2]} (the study's objectives)",
               lambda: fm.pareto_figure(fm.pareto_data(t, own[0], own[2], y_mode=own[1], x_mode=own[3])))
    factors = fa.ablation_factors(t, info.parameters)
    if not factors:
        yield ("ablations", "Ablations", "on/off comparisons", lambda: (_ for _ in ()).throw(NotApplicable(
            "no parameter of this study takes 2 to 8 values and all trials use one policy")))
    names = [f for f, _ in factors]
    for f, label in factors:
        per = fa.default_split(names, f)

        def ablation(f: str = f, per: str = per) -> go.Figure:
            return fa.ablation_figure(fa.ablation_split_data(t, f, per, metric), f, per)
        yield (f"ablation_{f}", "Ablations", label + (f", per {per}" if per != fa.NONE else ""), ablation)

    for f, label in factors:
        cache: dict[str, fcmp.Comparisons] = {}

        def comparison(f: str = f, cache: dict[str, fcmp.Comparisons] = cache) -> fcmp.Comparisons:
            if f in tune:
                raise NotApplicable(f"--tuned tunes over {f}: its own arms are not compared")
            if f == split:
                raise NotApplicable(f"--split {f}: the other factors are compared per value of {f}, not {f} itself")
            if "d" not in cache:
                by = split or fa.default_split([n for n in names if n not in tune], f)
                cache["d"] = fcmp.comparison_data(t, info.parameters, f, metric, references.get(f), split=by,
                                                  mode=mode, tune_over=tune, holdout=holdout)
            return cache["d"]

        def forest(comparison: Callable[[], fcmp.Comparisons] = comparison) -> go.Figure:
            return fcmp.forest_figure(comparison())

        def table(comparison: Callable[[], fcmp.Comparisons] = comparison) -> go.Figure:
            return fcmp.table_figure(comparison())
        vs = references.get(f, "the reference")
        if tune:
            vs += f", each arm tuned over {', '.join(tune)}" + (" (held-out seeds)" if holdout else "")
        if split and f != split:
            vs += f", per {split}"
        yield (f"comparison_{f}", "Comparisons", f"{label}: paired differences vs {vs} (forest plot)", forest)
        yield (f"comparison_{f}_table", "Comparisons", f"{label}: paired differences vs {vs} (table)", table)

    def lr_traj() -> go.Figure:
        steps = study_table(root, "steps", ["step", "lr"])
        if not fl.lr_varies(steps):
            raise NotApplicable("the learning rate is constant within every run: no learning-rate rule to show")
        return fc.curves_figure(fc.curves_data(steps, fc.run_groups(t, group), _first_switch(events()), y="lr",
                                               group_by=group), log_y=True)
    yield ("lr_trajectories", "Learning-rate rules", "learning-rate trajectories", lr_traj)
    damping, lr, batch = fl.guess_columns(params)

    def ratio() -> go.Figure:
        if not damping or not lr:
            raise NotApplicable("this study does not vary a damping and a learning rate")
        return fl.ratio_heatmaps_figure(fl.ratio_heatmaps_data(t, damping, lr, batch or fl.NONE, metric, mode),
                                        metric)
    yield ("lr_damping_ratio", "Learning-rate rules", "damping-to-learning-rate heatmaps", ratio)


def comparison_slugs(factor: str) -> tuple[str, str]:
    """The report's two comparison figures of ``factor``."""
    return f"comparison_{factor}", f"comparison_{factor}_table"


def resolve_references(study: str | Path | ObjectPath, arm: str, figures: Sequence[str] = ("*",)
                       ) -> tuple[dict[str, str], dict[str, str]]:
    """``--reference ARM``: (factor -> the arm its comparisons take as the reference, factor -> the default
    reference it keeps because ARM is none of its arms), over the comparison factors whose figures ``figures``
    (stems or shell patterns) selects. A ``ConfigError`` naming ``--reference`` (listing the arms) when ARM is an
    arm of none of them, names several arms of one, or is a full label (``variant = x``) of a factor without that
    arm; when the study draws no comparison figure."""
    info = study_info(study)
    drawn = [f for f, _ in fa.ablation_factors(info.trials, info.parameters)
             if any(fnmatch.fnmatchcase(slug, p) for slug in comparison_slugs(f) for p in figures)]
    arms = {f: fcmp.outcome_arms(info.trials, f) for f in drawn}
    arms = {f: a for f, a in arms.items() if len(a) >= 2}  # a factor with one arm draws no comparison
    if not arms:
        raise ConfigError("--reference", "applies to the comparison figures, and this report draws none (no "
                          "factor of the study has two arms with finished runs"
                          + (", or --figures selects none of them)" if tuple(figures) != ("*",) else ")"), arm)
    chosen: dict[str, str] = {}
    for f, labels in arms.items():
        found = fcmp.find_arms(labels, arm)
        if len(found) > 1:
            raise ConfigError("--reference", f"names several arms of {f} ({', '.join(found)}); give the full label",
                              arm)
        if found:
            chosen[f] = found[0]
    listed = "; ".join(f"{f}: {', '.join(labels)}" for f, labels in arms.items())
    if not chosen:
        raise ConfigError("--reference", f"must be an arm (its value or full label) of a compared factor; the "
                          f"arms: {listed}", arm)
    kept = {f: str(fcmp.default_reference(labels)) for f, labels in arms.items() if f not in chosen}
    return chosen, kept


def resolve_tuned(study: str | Path | ObjectPath, names: str, figures: Sequence[str] = ("*",)) -> list[str]:
    """``--tuned NAMES`` (comma-separated): the parameters the comparison figures tune each arm over, checked. A
    ``ConfigError`` naming ``--tuned`` when a name is ``seed`` or not a parameter of the study (listing them),
    when NAMES is empty, or when no comparison figure among those ``figures`` selects is left to draw (none at all,
    or each of a factor NAMES tunes over)."""
    info = study_info(study)
    tune = list(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
    if not tune:
        raise ConfigError("--tuned", "needs parameter names, comma-separated (e.g. lr_scale,damping)", names)
    choices = [p for p in dict.fromkeys(info.parameters) if p in info.trials.columns and p != "seed"]
    for n in tune:
        if n == "seed":
            raise ConfigError("--tuned", "seed pairs the runs: it cannot be tuned over", names)
        if n not in choices:
            raise ConfigError("--tuned", f"{n!r} is not a parameter of this study; its parameters: "
                              + (", ".join(choices) or "none"), names)
    drawn = [f for f, _ in fa.ablation_factors(info.trials, info.parameters)
             if any(fnmatch.fnmatchcase(slug, p) for slug in comparison_slugs(f) for p in figures)]
    if not drawn:
        raise ConfigError("--tuned", "applies to the comparison figures, and this report draws none (no factor of "
                          "the study has 2 to 8 values" + (", or --figures selects none of them)"
                                                          if tuple(figures) != ("*",) else ")"), names)
    if all(f in tune for f in drawn):
        raise ConfigError("--tuned", f"tunes over every factor whose comparison is drawn ({', '.join(drawn)}): "
                          "nothing is left to compare", names)
    return tune


def resolve_split(study: str | Path | ObjectPath, name: str, tune_over: Sequence[str] = (),
                  figures: Sequence[str] = ("*",)) -> str:
    """``--split NAME``: the factor the comparison figures are drawn per value of, checked. A ``ConfigError``
    naming ``--split`` when NAME is not a compared factor of the study (listing them), is one of ``tune_over``, or
    when no comparison of another factor among those ``figures`` selects is left to draw."""
    info = study_info(study)
    name = name.strip()
    factors = [f for f, _ in fa.ablation_factors(info.trials, info.parameters)]
    if name not in factors:
        raise ConfigError("--split", "must be a factor the comparisons compare (a parameter with 2 to 8 values); "
                          "this study's: " + (", ".join(factors) or "none"), name)
    if name in tune_over:
        raise ConfigError("--split", "is also in --tuned: a parameter is either tuned over or split by", name)
    drawn = [f for f in factors if f != name and f not in tune_over
             and any(fnmatch.fnmatchcase(slug, p) for slug in comparison_slugs(f) for p in figures)]
    if not drawn:
        raise ConfigError("--split", "leaves no comparison to draw (every other factor is tuned over, or --figures "
                          "selects none of their comparisons)", name)
    return name


def _first_switch(events: pd.DataFrame) -> pd.Series:
    ev = events[events["kind"].astype(str) == "switch"]
    return ev.groupby(ev["trial_id"].astype(str))["step"].min()


def png_renderer() -> str | None:
    """The name of an installed static image renderer, or None (PNG files are then skipped)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return None
    return "kaleido"


def write_report(study: str | Path | ObjectPath, out: str | Path, self_contained: bool = False,
                 png: bool | None = None, references: Mapping[str, str] | None = None,
                 tune_over: Sequence[str] = (), holdout: bool = False, split: str | None = None) -> list[Entry]:
    """Write one HTML file per figure and ``index.html`` into ``out``; PNG too when ``png`` (default: when a
    renderer is installed). ``self_contained`` embeds plotly.js in every file (~4.6 MB each); otherwise the
    files share one ``plotly.min.js`` written next to them (works offline, keep the folder together).
    ``references``: factor -> its comparisons' reference arm (:func:`resolve_references`); ``tune_over`` and
    ``holdout``: tuned comparisons (:func:`resolve_tuned`); ``split``: comparisons per value of it
    (:func:`resolve_split`)."""
    info = study_info(study)
    out = Path(out)
    writable_folder(out, "--out")  # one line (exit 2), not an OSError traceback, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    renderer = png_renderer()
    want_png = bool(renderer) if png is None else png
    entries: list[Entry] = []
    drawn: list[tuple[int, go.Figure]] = []  # (entry index, figure) of the figures written as HTML
    for slug, section, title, build in _views(info, references, tune_over, holdout, split):
        try:
            fig = build()
        except NotApplicable as exc:
            entries.append(Entry(slug, section, title, None, None, str(exc)))
            continue
        except StudyReadError as exc:
            log.error("report %s: %s", slug, exc)
            entries.append(Entry(slug, section, title, None, None, f"cannot read the study: {exc}"))
            continue
        path = out / f"{slug}.html"
        fig.write_html(str(path), include_plotlyjs=True if self_contained else "directory", full_html=True,
                       config={"displaylogo": False})
        drawn.append((len(entries), fig))
        entries.append(Entry(slug, section, title, path, None, None))
    if want_png and renderer and drawn:
        for i, png_path in write_pngs([fig for _, fig in drawn], [out / f"{entries[i].slug}.png" for i, _ in drawn],
                                      [i for i, _ in drawn]):
            entries[i] = entries[i]._replace(png=png_path)
    (out / "index.html").write_text(index_html(info, entries, renderer))
    return entries


SMALL_PNG_WIDTH = 900  # --png: pixels, scale 1 (small files for docs/figures)


def view_slugs(study: str | Path | ObjectPath) -> list[str]:
    """The file name stems of every view of the study (applicable or not), in the report's order."""
    return [slug for slug, *_ in _views(study_info(study))]


def write_png_files(study: str | Path | ObjectPath, out: str | Path, figures: Sequence[str] = ("*",),
                    width: int = SMALL_PNG_WIDTH, references: Mapping[str, str] | None = None,
                    tune_over: Sequence[str] = (), holdout: bool = False, split: str | None = None) -> list[Entry]:
    """``hyperswitch report STUDY --png DIR``: the chosen views (``figures``: stems or shell patterns, e.g.
    ``comparison_*``) as PNG files ``width`` pixels wide at scale 1 (small enough to commit), nothing else. A view
    that does not apply is an entry with its reason. Raises ``ValueError`` for a pattern that names no view."""
    info = study_info(study)
    out = Path(out)
    writable_folder(out, "--png")
    views = list(_views(info, references, tune_over, holdout, split))
    for pattern in figures:
        if not any(fnmatch.fnmatchcase(slug, pattern) for slug, *_ in views):
            raise ValueError(f"{pattern!r} names no figure of this study; its figures: "
                             + ", ".join(slug for slug, *_ in views))
    out.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    drawn: list[tuple[int, go.Figure]] = []
    for slug, section, title, build in views:
        if not any(fnmatch.fnmatchcase(slug, p) for p in figures):
            continue
        try:
            fig = build()
        except (NotApplicable, StudyReadError) as exc:
            entries.append(Entry(slug, section, title, None, None, str(exc)))
            continue
        drawn.append((len(entries), fig))
        entries.append(Entry(slug, section, title, None, None, None))
    if drawn:
        for i, path in write_pngs([f for _, f in drawn], [out / f"{entries[i].slug}.png" for i, _ in drawn],
                                  [i for i, _ in drawn], width=width, scale=1):
            entries[i] = entries[i]._replace(png=path)
    return entries


def write_pngs(figs: list[go.Figure], paths: list[Path], keys: list[int], width: int = 1100,
               scale: float = 2) -> Iterator[tuple[int, Path]]:
    """Write each figure as PNG; yield (key, path) for those written. One renderer session for all of them
    (kaleido starts a browser per call otherwise); a figure the batch did not write is tried once more alone,
    and one that still fails is logged and skipped (its HTML stays)."""
    import plotly.io as pio

    for path in paths:  # a file left by an earlier report is not a PNG of this one
        path.unlink(missing_ok=True)
    sizes = {"width": width, "scale": scale}
    heights = [int(f.layout.height or 460) for f in figs]
    try:
        pio.write_images(figs, paths, height=heights, **sizes)
    except Exception as exc:  # a renderer that cannot start must not lose the HTML
        log.warning("PNG batch not written (%s); trying each figure alone", " ".join(str(exc).split())[:200])
    for fig, path, key, height in zip(figs, paths, keys, heights, strict=True):
        if not (path.is_file() and path.stat().st_size):
            try:
                fig.write_image(str(path), height=height, **sizes)
            except Exception as exc:
                log.warning("PNG of %s not written: %s", path.stem, " ".join(str(exc).split())[:200])
                continue
        yield key, path


def index_html(info: StudyInfo, entries: list[Entry], renderer: str | None) -> str:
    e = html.escape
    fin, total = len(info.finished()), info.n_total()
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(info.name)}: hyperswitch report</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222} li{margin:4px 0}"
             " .na{color:#777} h2{margin-top:22px}</style></head><body>",
             f"<h1>{e(info.name)}</h1>",
             f"<p>status {e(info.status)}; {fin}/{total if total else '?'} trials finished; metric "
             f"{e(info.metric)} ({e(info.mode)}); parameters {e(', '.join(info.parameters))}</p>"]
    if not renderer:
        parts.append("<p class='na'>PNG files: not written (no static renderer such as kaleido is installed).</p>")
    section = None
    for en in entries:
        if en.section != section:
            if section is not None:
                parts.append("</ul>")
            section = en.section
            parts.append(f"<h2>{e(section)}</h2><ul>")
        if en.html is not None:
            png = f" (<a href='{e(en.png.name)}'>PNG</a>)" if en.png else ""
            parts.append(f"<li><a href='{e(en.html.name)}'>{e(en.title)}</a>{png}</li>")
        else:
            parts.append(f"<li class='na'>{e(en.title)}: {e(en.reason or '')}</li>")
    parts.append("</ul></body></html>\n")
    return "\n".join(parts)
