"""docs/algorithms.md is the reference the code cites: every cited anchor exists, nothing cites the old
spec file outside the repository, and every parameter the registries accept is documented in its section."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.optim import get_optimizer, optimizer_names
from hyperswitch.switching import get_policy_type, policy_type_names
from hyperswitch.switching.lr_rule import validate_lr_rule
from hyperswitch.switching.switch import MIXER_CORRECTOR, validate_corrector
from hyperswitch.switching.switcher import validate_switch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "algorithms.md"
OLD_SPEC = "ALGORITHMS" + ".md"  # spelled in two parts so that this file does not cite it
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", ".pytest_cache", ".ruff_cache", ".mypy_cache",
             "runs", "build", "dist"}
MAX_BYTES = 2_000_000

# The section (heading slug) that documents each registry name. A new optimizer or policy type fails
# test_every_parameter_is_documented until it has a section here and in docs/algorithms.md.
FIRST_ORDER = ("sgd", "sgdm", "adam", "adamw", "rmsprop", "adagrad", "lamb", "swats", "padam", "adabound", "lion",
               "prodigy", "dadapt_adam")
OPTIMIZER_SECTIONS = {
    **dict.fromkeys(FIRST_ORDER, "first-order-optimizers"),
    "kfac": "k-fac-and-foof", "foof": "k-fac-and-foof", "shampoo": "shampoo",
    "ef": "natural-gradient-ef-ief-sf", "ief": "natural-gradient-ef-ief-sf", "sf": "natural-gradient-ef-ief-sf",
    "gen": "gen",
}
POLICY_SECTIONS = {"single": "single", "switch": "switch-and-mixer", "mixer": "switch-and-mixer", "iomt": "iomt"}
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CITATION = re.compile(r"docs/algorithms\.md#([A-Za-z0-9_-]+)")


def github_slug(text: str) -> str:
    """GitHub's heading anchor: lower case, markup and punctuation dropped (letters, digits, ``_``, ``-`` and
    spaces kept), spaces to ``-``."""
    text = re.sub(r"`|\*\*|__", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(markdown: str) -> list[tuple[int, str, int]]:
    """``(level, slug, line index)`` of every heading outside fenced code blocks; repeated slugs get GitHub's
    ``-1``, ``-2`` suffixes."""
    out, seen, fenced = [], {}, False
    for i, line in enumerate(markdown.splitlines()):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = HEADING.match(line)
        if fenced or not m:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.append((len(m.group(1)), slug if n == 0 else f"{slug}-{n}", i))
    return out


def sections(markdown: str) -> dict[str, str]:
    """Slug -> the section's text: its heading down to the next heading of the same or a higher level."""
    lines = markdown.splitlines()
    hs = headings(markdown)
    out = {}
    for k, (level, slug, start) in enumerate(hs):
        end = next((i for lv, _, i in hs[k + 1:] if lv <= level), len(lines))
        out[slug] = "\n".join(lines[start:end])
    return out


def repository_text_files() -> list[Path]:
    """Every readable text file of the repository, outside virtual environments, caches and build output."""
    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if not path.is_file() or path.stat().st_size > MAX_BYTES:
                    continue
                with path.open("rb") as f:
                    if b"\0" in f.read(4096):  # binary
                        continue
            except OSError:
                continue
            files.append(path)
    return files


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC.is_file(), "docs/algorithms.md is missing"
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def texts() -> dict[Path, str]:
    return {p: read(p) for p in repository_text_files()}


def test_slugs_follow_github():
    assert github_slug("K-FAC and FOOF") == "k-fac-and-foof"
    assert github_slug("Natural gradient: EF, iEF, SF") == "natural-gradient-ef-ief-sf"
    assert github_slug("lr_rule") == "lr_rule"
    assert github_slug("The `switch` rule (000)") == "the-switch-rule-000"
    assert [s for _, s, _ in headings("# A\n## A\n```\n# not a heading\n```\n### A\n")] == ["a", "a-1", "a-2"]


def test_headings_are_unique(doc: str):
    slugs = [s for _, s, _ in headings(doc)]
    assert not [s for s in slugs if re.search(r"-\d+$", s) and s.rsplit("-", 1)[0] in slugs], (
        "two headings share a slug; the second one's anchor would depend on the first")


def test_every_cited_anchor_exists(doc: str, texts: dict[Path, str]):
    anchors = {s for _, s, _ in headings(doc)}
    missing = []
    for path, text in texts.items():
        rel = path.relative_to(ROOT)
        cited = CITATION.findall(text)
        if path.parent == DOC.parent:  # links between the docs: (algorithms.md#x); within the page: (#x)
            cited += re.findall(r"\]\(algorithms\.md#([A-Za-z0-9_-]+)\)", text)
        if path == DOC:
            cited += re.findall(r"\]\(#([A-Za-z0-9_-]+)\)", text)
        missing += [f"{rel}: #{a}" for a in cited if a not in anchors]
    assert not missing, "anchors cited but not headings of docs/algorithms.md:\n" + "\n".join(missing)


def test_code_cites_the_repository_doc(texts: dict[Path, str]):
    assert any(CITATION.search(t) for p, t in texts.items() if p.suffix == ".py"), "no module cites the doc"
    stale = [str(p.relative_to(ROOT)) for p, t in texts.items() if OLD_SPEC in t]
    assert not stale, f"cite docs/algorithms.md#<anchor> instead of {OLD_SPEC} (outside the repository) in: {stale}"


def accepted_keys(validate: Callable[..., Any], spec: Mapping[str, Any], *args: Any, **kwargs: Any) -> list[str]:
    """The keys a validator accepts, as its unknown-key error lists them ("... allowed: a, b, c")."""
    with pytest.raises(ConfigError) as info:
        validate({**spec, "zz_not_a_key": 1}, "k", *args, **kwargs)
    rule = info.value.rule
    assert "allowed: " in rule, rule
    return [k.strip() for k in rule.rsplit("allowed: ", 1)[1].split(",")]


def documented_names() -> list[tuple[str, str, list[str]]]:
    """``(what, section slug, parameter names)`` for every optimizer, policy type and nested policy key."""
    out = []
    for name in optimizer_names():
        section = OPTIMIZER_SECTIONS.get(name)
        assert section, f"optimizer {name!r} has no section in OPTIMIZER_SECTIONS (and docs/algorithms.md)"
        out.append((f"optimizer {name}", section, sorted(get_optimizer(name).defaults)))
    for name in policy_type_names():
        section = POLICY_SECTIONS.get(name)
        assert section, f"policy type {name!r} has no section in POLICY_SECTIONS (and docs/algorithms.md)"
        out.append((f"policy type {name}", section, [k for k in get_policy_type(name).keys if k != "type"]))
    out.append(("policy key", "policies", ["type"]))
    out.append(("switch rule", "switcher", accepted_keys(validate_switch, {})))
    out.append(("corrector", "corrector", accepted_keys(validate_corrector, {}, MIXER_CORRECTOR)))
    out.append(("lr_rule", "lr_rule", accepted_keys(validate_lr_rule, {"name": "gen"})))
    return out


def test_every_parameter_is_documented(doc: str):
    secs = sections(doc)
    problems = []
    for what, slug, names in documented_names():
        if slug not in secs:
            problems.append(f"{what}: no section #{slug}")
            continue
        spans = set(re.findall(r"`([^`\n]+)`", secs[slug]))
        problems += [f"{what}: `{n}` not in section #{slug}" for n in names if n not in spans]
    assert not problems, "docs/algorithms.md lacks (write each as `name` in its section):\n" + "\n".join(problems)
