"""What every page shares: the page record, the study context, the guard that turns failures into plain messages
(and one line in the server log), and small control builders."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from dash import dcc, html

from hyperswitch.figures._common import message_figure
from hyperswitch.figures.data import NotApplicable, activity
from hyperswitch.results.cache import StudyInfo, StudyReadError, study_info
from hyperswitch.results.fs import StudyPath
from hyperswitch.results.names import RULE as NAME_RULE
from hyperswitch.results.names import is_study_name
from hyperswitch.results.reader import list_studies

log = logging.getLogger("hyperswitch.dashboard")

FIGURE, MESSAGE, DATA, OPTIONS, VALUE, NONE = "figure", "message", "data", "options", "value", "none"


@dataclass(frozen=True)
class Page:
    path: str
    name: str
    prefix: str  # every component id of the page starts with it
    layout: Callable[..., Any]
    register: Callable[..., None]
    study_page: bool = True


@dataclass
class Context:
    """The storage folder the app serves and its study lookup; ``policies``: where the export panel writes."""

    storage: StudyPath  # a local folder or a storage URI's place (hyperswitch.results.fs)
    policies: Path = Path("policies")

    def study_names(self) -> list[str]:
        return [p.name for p in list_studies(self.storage)]

    def study_path(self, name: str | None) -> StudyPath:
        """The folder of study ``name``; only names of studies under the storage folder are accepted."""
        if not name:
            raise NotApplicable("pick a study")
        if not is_study_name(name):  # from a URL: a plain folder name under the storage folder, never a path
            raise NotApplicable(f"{name!r} is not a study name: {NAME_RULE}")
        for p in list_studies(self.storage):
            if p.name == name:
                return p
        raise NotApplicable(f"there is no study {name!r} under {self.storage}")

    def info(self, name: str | None) -> StudyInfo:
        return study_info(self.study_path(name))


def query_study(search: str | None) -> str | None:
    values = parse_qs((search or "").lstrip("?")).get("study")
    return values[0] if values else None


def study_href(path: str, study: str | None) -> str:
    return f"{path}?study={quote(study)}" if study else path


# --- failures as messages -------------------------------------------------------------------------------------

def explain(exc: BaseException, where: str) -> str:
    """The message for the page; the server log gets one line (and the traceback for unexpected errors)."""
    if isinstance(exc, NotApplicable):
        return str(exc)
    if isinstance(exc, StudyReadError):
        log.error("%s: %s", where, exc)
        return f"Cannot read this study: {exc}"
    log.exception("%s failed: %s: %s", where, type(exc).__name__, exc)
    return f"This view failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); details are in the " \
           "server log."


def message_box(text: str | None, kind: str = "info") -> Any:
    if not text:
        return None
    return html.Div(text, className=f"hs-message hs-{kind}", role="status")


def guarded(outputs: Sequence[str], where: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a callback: a :class:`NotApplicable` or read error (or any other failure) becomes, for each output,
    a message figure / message box / empty value, never a traceback in the browser."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            activity(True)
            try:
                out = fn(*args, **kwargs)
            except Exception as exc:  # the guard's purpose
                text = explain(exc, where)
                kind = "info" if isinstance(exc, NotApplicable) else "error"
                # A view that does not apply says so once: in its figure when it has one.
                quiet = kind == "info" and FIGURE in outputs
                out = tuple(None if (quiet and o == MESSAGE) else _fallback(o, text, kind) for o in outputs)
            finally:
                activity(False)
            log.debug("%s took %.3f s", where, time.perf_counter() - t0)
            return out if len(outputs) > 1 else (out[0] if isinstance(out, tuple) else out)

        return wrapper

    return deco


def _fallback(kind: str, text: str, level: str) -> Any:
    if kind == FIGURE:  # an error is stated in full in the page's message box
        return message_figure(text if level == "info" else "This view cannot be drawn: see the message above.")
    if kind == MESSAGE:
        return message_box(text, level)
    if kind in (DATA, OPTIONS):
        return []
    return None


def run_guarded(fn: Callable[[], Any], where: str) -> Any:
    """Build a page layout; failures become a message box."""
    try:
        return fn()
    except Exception as exc:
        return message_box(explain(exc, where), "info" if isinstance(exc, NotApplicable) else "error")


# --- controls -------------------------------------------------------------------------------------------------

def options(values: Sequence[str], labels: dict[str, str] | None = None) -> list[dict[str, str]]:
    labels = labels or {}
    return [{"label": labels.get(v, v), "value": v} for v in values]


def control(label: str, component: Any, width: str = "220px") -> Any:
    return html.Div([html.Label(label, className="hs-label"), component], className="hs-control",
                    style={"minWidth": width})


def dropdown(id_: str, values: Sequence[str], value: Any, labels: dict[str, str] | None = None,
             multi: bool = False, clearable: bool = False) -> Any:
    return dcc.Dropdown(id=id_, options=options(values, labels), value=value, multi=multi, clearable=clearable)


def radio(id_: str, values: Sequence[str], value: str, labels: dict[str, str] | None = None) -> Any:
    return dcc.RadioItems(id=id_, options=options(values, labels), value=value, inline=True,
                          className="hs-radio")


def graph(id_: str, height: int = 460) -> Any:
    return dcc.Loading(dcc.Graph(id=id_, config={"displaylogo": False}, style={"minHeight": f"{height}px"}),
                       delay_show=400)


def refresh_interval(prefix: str, info: StudyInfo) -> Any:
    """Redraws the page's figures every 10 s while the study's sweep runs."""
    return dcc.Interval(id=f"{prefix}-refresh", interval=10_000, disabled=info.status != "running")


def study_store(prefix: str, name: str) -> Any:
    return dcc.Store(id=f"{prefix}-study", data=name)


def header(title: str, info: StudyInfo, extra: str = "") -> Any:
    fin, total = len(info.finished()), info.n_total()
    metrics, modes = info.objectives
    objective = f"metric {info.metric} ({info.mode})" if len(metrics) == 1 else \
        "objectives " + ", ".join(f"{m} ({d})" for m, d in zip(metrics, modes, strict=True))
    parts = [f"status {info.status}", f"{fin}/{total if total else '?'} trials finished", objective]
    if info.meta.get("constraints"):
        parts.append("constraints " + "; ".join(map(str, info.meta["constraints"])))
    if extra:
        parts.append(extra)
    name = info.path.name if info.name == info.path.name else f"{info.path.name} (study {info.name})"
    return html.Div([html.H2(f"{title}: {name}"), html.Div(" \u00b7 ".join(parts), className="hs-sub")])


PARAM_METRICS = ("val_accuracy", "best_val_accuracy", "time_to_target_s", "steps_to_target", "switch_step",
                 "peak_memory_bytes", "wall_time_s", "val_loss", "train_loss", "val_recon_error")


def metric_choices(info: StudyInfo) -> tuple[list[str], dict[str, str], str]:
    """Metrics this study's trials table has (values, labels, default: the study's own metric)."""
    from hyperswitch.figures._common import metric_label

    values = [m for m in PARAM_METRICS if m in info.trials.columns] or list(PARAM_METRICS[:1])
    default = info.metric if info.metric in values else values[0]
    return values, {m: metric_label(m) for m in values}, default


def study_page_top(prefix: str, title: str, info: StudyInfo, extra: str = "") -> list[Any]:
    """Header, the study's name for callbacks, the refresh timer, and the export button (when available)."""
    from dashboards import export_panel
    from hyperswitch.figures.data import prefetch

    prefetch(info.path)
    return [header(title, info, extra), study_store(prefix, info.path.name), refresh_interval(prefix, info),
            export_panel.panel(prefix)]


def study_list(study: str, others: Any) -> list[str]:
    extra = [o for o in (others or []) if isinstance(o, str) and o != study]
    return [study, *extra]


def combined_trials(ctx: Context, names: Sequence[str]) -> Any:
    """The trials of one or more studies, with a ``study`` column; trial ids become ``study/trial_id`` when
    there are several (ids are only unique within a study)."""
    import pandas as pd

    frames = []
    for n in names:
        t = ctx.info(n).trials.copy()
        t["study"] = n
        if len(names) > 1:
            t["trial_id"] = n + "/" + t["trial_id"].astype(str)
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def combined_table(ctx: Context, names: Sequence[str], table: str, columns: Sequence[str]) -> Any:
    """``steps``/``events`` columns of one or more studies (trial ids prefixed as in :func:`combined_trials`)."""
    import pandas as pd

    from hyperswitch.results.cache import study_table

    frames = []
    for n in names:
        df = study_table(ctx.study_path(n), table, columns)
        if len(names) > 1:
            df = df.copy()
            df["trial_id"] = df["trial_id"].cat.rename_categories([f"{n}/{c}" for c in df["trial_id"].cat.categories])
        frames.append(df)
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    out["trial_id"] = out["trial_id"].astype("category")
    return out


def switch_steps(events: Any) -> Any:
    """trial_id -> step of the first ``switch`` event."""
    import pandas as pd

    if not len(events):
        return pd.Series(dtype=float)
    ev = events[events["kind"].astype(str) == "switch"]
    return ev.groupby(ev["trial_id"].astype(str))["step"].min()


def default_group(info: StudyInfo, fallback: str) -> str:
    """What to group runs by at first: the policy when the study compares several, else its ablation factor
    (``variant``, ``select``, ...), else its first varied parameter."""
    from hyperswitch.figures.ablations import CORRECTOR, POLICY, ablation_factors

    factors = [f for f, _ in ablation_factors(info.trials, info.varied_parameters) if f != CORRECTOR]
    if POLICY in factors:
        return POLICY
    known = [f for f in factors if f in ("variant", "ablation", "select", "optimizer", "base")]
    if known:
        return known[0]
    return info.varied_parameters[0] if info.varied_parameters else fallback
