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
