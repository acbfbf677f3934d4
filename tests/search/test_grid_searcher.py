"""The grid searcher alone: every point once, a seeded order, --samples as a prefix, skipped points."""

from ray.tune.search import Searcher

from hyperswitch.search.seeds import GridSearcher

GRID = {"theta": [0.001, 0.01, 0.1], "K": [1, 5]}


def drain(s: GridSearcher) -> list[tuple]:
    out = []
    while (p := s.suggest("t")) != Searcher.FINISHED:
        out.append((p["theta"], p["K"]))
    return out


def test_every_point_once_in_a_seeded_order():
    a, b, c = (drain(GridSearcher(GRID, "max", seed)) for seed in (0, 0, 1))
    assert sorted(a) == sorted((t, k) for t in GRID["theta"] for k in GRID["K"]) and len(set(a)) == 6
    assert a == b and a != c  # same seed, same order; another seed, another order (6! orders)


def test_limit_is_a_prefix_and_skipping_removes_points():
    full = drain(GridSearcher(GRID, "max", 3))
    assert drain(GridSearcher(GRID, "max", 3, limit=4)) == full[:4]
    s = GridSearcher(GRID, "max", 3)
    assert s.skip({"theta": full[0][0], "K": float(full[0][1])})  # Parquet's widened int still matches
    s.add_evaluated_point({"theta": full[2][0], "K": full[2][1]}, 0.9)
    assert not s.skip({"theta": 0.5, "K": 1})
    assert drain(s) == [full[1], *full[3:]]
