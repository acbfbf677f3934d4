"""``hyperswitch report STUDY --png DIR``: chosen figures as small PNG files (issue 16: figures to commit under
docs/figures), and the comparison views of the HTML report, on a study written by the real results store."""

from __future__ import annotations

from hyperswitch.cli import main
from hyperswitch.figures.report import view_slugs
from tests.figures.armstudy import write_arms_study

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def assert_one_line_errors(base: list[str], cases: list[tuple[list[str], str]], capsys, out_dir) -> None:
    """Each case (extra arguments, expected message) exits 2 with that message as stderr's one line, prints nothing
    to stdout, and writes nothing to out_dir."""
    for args, message in cases:
        assert main([*base, *args]) == 2, args
        captured = capsys.readouterr()
        assert len(captured.err.splitlines()) == 1 and message in captured.err, (args, captured.err)
        assert not captured.out
    assert not out_dir.exists()  # nothing written


def test_report_lists_the_comparison_views(tmp_path):
    root = write_arms_study(tmp_path)
    slugs = view_slugs(root)
    assert {"comparison_variant", "comparison_variant_table", "ablation_variant"} <= set(slugs)


def test_png_option_writes_small_pngs_of_the_chosen_figures(tmp_path, capsys):
    # kaleido is in the test extra: without it this fails (the feature is missing), it is not skipped
    write_arms_study(tmp_path / "runs")
    out = tmp_path / "figs"
    assert main(["report", "arms", "--storage", str(tmp_path / "runs"), "--png", str(out),
                 "--figures", "comparison_variant*, ablation_variant"]) == 0
    said = capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ablation_variant.png", "comparison_variant.png", "comparison_variant_table.png"]
    assert "wrote 3 PNG file(s)" in said
    for name in names:
        data = (out / name).read_bytes()
        width, height = png_size(data)
        assert width == 900 and 200 < height < 1000 and len(data) < 300_000, (name, width, height, len(data))
    assert not (out / "index.html").exists()  # --png alone: no HTML report


def test_png_option_errors(tmp_path, capsys):
    write_arms_study(tmp_path / "runs")
    assert main(["report", "arms", "--storage", str(tmp_path / "runs")]) == 2
    assert "give --out DIR (HTML files), --png DIR (small PNG files) or both" in capsys.readouterr().err
    assert main(["report", "arms", "--storage", str(tmp_path / "runs"), "--png", str(tmp_path / "f"),
                 "--figures", "nope_*"]) == 2
    err = capsys.readouterr().err
    assert "--figures: 'nope_*' names no figure of this study; its figures: parameter_task" in err
    assert not (tmp_path / "f").exists()
    (tmp_path / "file").write_text("x")
    assert main(["report", "arms", "--storage", str(tmp_path / "runs"), "--png", str(tmp_path / "file")]) == 2
    assert "--png: must be a folder" in capsys.readouterr().err


def test_reference_option_sets_the_comparisons_reference_arm(tmp_path, capsys):
    from hyperswitch.figures.report import resolve_references, write_report

    root = write_arms_study(tmp_path / "runs")
    # by value: the factor with that arm takes it, the others keep their default (and the command says so)
    refs, kept = resolve_references(root, "mixer")
    assert refs == {"variant": "variant = mixer"}
    assert kept == {"corrector": "corrector off", "T1": "T1 = 0", "task": "task = digits_cnn"}
    # the full label, with or without spaces around "="; a value of another factor
    for arm in ("variant = no_corrector", "variant=no_corrector", " no_corrector "):
        assert resolve_references(root, arm)[0] == {"variant": "variant = no_corrector"}, arm
    assert resolve_references(root, "corrector on")[0] == {"corrector": "corrector on"}
    assert resolve_references(root, "0")[0] == {"T1": "T1 = 0"}

    entries = write_report(root, tmp_path / "report", png=False, references=refs)
    titles = {e.slug: e.title for e in entries}
    assert titles["comparison_variant"] == "variant: paired differences vs variant = mixer (forest plot)"
    assert titles["comparison_T1_table"].endswith(": paired differences vs the reference (table)")
    table = (tmp_path / "report" / "comparison_variant_table.html").read_text()
    assert "every arm of variant vs variant = mixer" in table and "variant = mixer (reference)" in table
    assert "variant = first_order (reference)" not in table
    forest = (tmp_path / "report" / "comparison_variant.html").read_text()
    assert "paired difference vs variant = mixer" in forest
    assert "every arm of T1 vs T1 = 0" in (tmp_path / "report" / "comparison_T1_table.html").read_text()
    default = write_report(root, tmp_path / "default", png=False)  # without it: the baseline-looking arm
    assert "variant = first_order (reference)" in (tmp_path / "default" / "comparison_variant_table.html").read_text()
    assert {e.slug: e.title for e in default}["comparison_variant"].endswith("vs the reference (forest plot)")

    # the command: the references it uses, said before the figures are written
    out = tmp_path / "figs"
    assert main(["report", "arms", "--storage", str(tmp_path / "runs"), "--png", str(out), "--figures",
                 "comparison_variant_table", "--reference", "variant=mixer"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "comparison_variant and comparison_variant_table: reference variant = mixer"
    assert len(said) == 2 and said[1].startswith("wrote 1 PNG file(s)")  # --figures: only variant's are drawn
    assert sorted(p.name for p in out.iterdir()) == ["comparison_variant_table.png"]


def test_reference_option_errors_list_the_arms(tmp_path, capsys):
    write_arms_study(tmp_path / "runs")
    base = ["report", "arms", "--storage", str(tmp_path / "runs")]
    cases = [
        (["--out", str(tmp_path / "r"), "--reference", "iomt_prose"],
         "--reference: must be an arm (its value or full label) of a compared factor; the arms: corrector: "
         "corrector off, corrector on; variant: variant = first_order, variant = mixer, variant = no_corrector; "
         "T1: T1 = 0, T1 = 10; task: task = digits_cnn, task = digits_mlp (got 'iomt_prose')"),
        # a full label of a factor without that arm
        (["--out", str(tmp_path / "r"), "--reference", "task = mixer"], "the arms: corrector: "),
        # --png: only the comparisons --figures selects count
        (["--png", str(tmp_path / "r"), "--figures", "comparison_task*", "--reference", "mixer"],
         "--reference: must be an arm (its value or full label) of a compared factor; the arms: task: "
         "task = digits_cnn, task = digits_mlp (got 'mixer')"),
        (["--png", str(tmp_path / "r"), "--figures", "parameter_*", "--reference", "mixer"],
         "--reference: applies to the comparison figures, and this report draws none (no factor of the study has "
         "two arms with finished runs, or --figures selects none of them) (got 'mixer')"),
    ]
    assert_one_line_errors(base, cases, capsys, tmp_path / "r")


def test_tuned_option_tunes_the_comparison_figures(tmp_path, capsys):
    from hyperswitch.figures.report import resolve_tuned, write_report

    root = write_arms_study(tmp_path / "runs")
    assert resolve_tuned(root, " task, task ") == ["task"]
    # each variant at its best task (digits_cnn: +0.01 in every run), paired by seed; task is no split then
    entries = write_report(root, tmp_path / "report", png=False, tune_over=["task"])
    by_slug = {e.slug: e for e in entries}
    assert by_slug["comparison_variant"].title == (
        "variant: paired differences vs the reference, each arm tuned over task (forest plot)")
    assert by_slug["comparison_task"].html is None
    assert by_slug["comparison_task"].reason == "--tuned tunes over task: its own arms are not compared"
    table = (tmp_path / "report" / "comparison_variant_table.html").read_text()
    assert "tuned cell" in table and "task=digits_cnn; best of 2 cells" in table
    assert "the same seeds chose the cells and measure them: optimistic" in table
    assert "extend the grid" not in table  # task is not numeric: no grid edge
    held = write_report(root, tmp_path / "held", png=False, tune_over=["task"], holdout=True)
    assert {e.slug: e.title for e in held}["comparison_variant_table"].endswith(
        "tuned over task (held-out seeds) (table)")
    assert "cells chosen on seeds 0-1, differences on seeds 2-4 (held out)" in (
        tmp_path / "held" / "comparison_variant_table.html").read_text()

    out = tmp_path / "figs"
    assert main(["report", "arms", "--storage", str(tmp_path / "runs"), "--png", str(out), "--figures",
                 "comparison_variant_table", "--tuned", "task", "--holdout"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == ("comparison figures: each arm at its own best cell of task, chosen on the first half of the "
                       "seeds, differences on the other half (held out)")
    assert said[1].startswith("wrote 1 PNG file(s)") and (out / "comparison_variant_table.png").is_file()


def test_tuned_option_errors(tmp_path, capsys):
    write_arms_study(tmp_path / "runs")
    base = ["report", "arms", "--storage", str(tmp_path / "runs")]
    cases = [
        (["--out", str(tmp_path / "r"), "--tuned", "lr_scale,task"],
         "--tuned: 'lr_scale' is not a parameter of this study; its parameters: task, variant, T1 "
         "(got 'lr_scale,task')"),
        (["--out", str(tmp_path / "r"), "--tuned", "seed"], "--tuned: seed pairs the runs: it cannot be tuned over"),
        (["--out", str(tmp_path / "r"), "--tuned", " , "], "--tuned: needs parameter names, comma-separated"),
        (["--out", str(tmp_path / "r"), "--holdout"], "--holdout: applies with --tuned NAMES"),
        (["--png", str(tmp_path / "r"), "--figures", "comparison_task*", "--tuned", "task"],
         "--tuned: tunes over every factor whose comparison is drawn (task): nothing is left to compare"),
        (["--png", str(tmp_path / "r"), "--figures", "parameter_*", "--tuned", "task"],
         "--tuned: applies to the comparison figures, and this report draws none"),
    ]
    assert_one_line_errors(base, cases, capsys, tmp_path / "r")


def test_split_option_draws_the_comparisons_per_value(tmp_path, capsys):
    from hyperswitch.figures.report import resolve_split, write_report

    root = write_arms_study(tmp_path / "runs")
    assert resolve_split(root, " variant ") == "variant"
    entries = write_report(root, tmp_path / "report", png=False, split="variant")
    by_slug = {e.slug: e for e in entries}
    assert by_slug["comparison_task"].title == "task: paired differences vs the reference, per variant (forest plot)"
    assert by_slug["comparison_variant"].html is None
    assert by_slug["comparison_variant"].reason == (
        "--split variant: the other factors are compared per value of variant, not variant itself")
    table = (tmp_path / "report" / "comparison_task_table.html").read_text()
    # digits_cnn (the reference) is digits_mlp + 0.01 in every run: the same difference within each variant
    for variant in ("first_order", "mixer", "no_corrector"):
        assert f"variant = {variant}" in table, variant
    assert table.count("-0.01 [-0.01, -0.01]") == 3
    # without --split the task comparison is not split (task is the default split of the others)
    plain = write_report(root, tmp_path / "plain", png=False)
    assert "variant = mixer" not in (tmp_path / "plain" / "comparison_task_table.html").read_text()
    assert {e.slug: e for e in plain}["comparison_variant"].html is not None

    out = tmp_path / "figs"
    assert main(["report", "arms", "--storage", str(tmp_path / "runs"), "--png", str(out), "--figures",
                 "comparison_task_table", "--split", "variant"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "comparison figures: per value of variant"
    assert said[1].startswith("wrote 1 PNG file(s)") and (out / "comparison_task_table.png").is_file()


def test_split_option_errors(tmp_path, capsys):
    write_arms_study(tmp_path / "runs")
    base = ["report", "arms", "--storage", str(tmp_path / "runs")]
    cases = [
        (["--out", str(tmp_path / "r"), "--split", "seed"],
         "--split: must be a factor the comparisons compare (a parameter with 2 to 8 values); this study's: "),
        (["--out", str(tmp_path / "r"), "--split", "task", "--tuned", "task"],
         "--split: is also in --tuned: a parameter is either tuned over or split by (got 'task')"),
        (["--png", str(tmp_path / "r"), "--figures", "comparison_variant*", "--split", "variant"],
         "--split: leaves no comparison to draw"),
    ]
    assert_one_line_errors(base, cases, capsys, tmp_path / "r")
