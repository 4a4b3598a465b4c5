"""The race's decision logic on hand-built rung tables (raydrift.orchestration.race, pure, no Ray).

Most tables use ``log_scale=False`` so the statistics can be checked by hand. Rungs: grace 100 images, eta 2,
max 400 images -> milestones 100, 200, 400 (the last is the final rung).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import t as student_t

from raydrift.orchestration.race import Race, RaceConfig
from raydrift.orchestration.race_stats import Comparison, Paired, holm, paired, pooled_noise, resolvable

# The base table at rung 0 (two seeds per group).
#   group  seed0  seed1  mean  d = seed1 - seed0
#   A      10     12     11     2
#   B      20     22     21     2
#   C      22     28     25     6
#   D      60     58     59    -2
# Additive fit with 2 seeds: residuals +-(d - mean d)/2, mean d = 2 -> deviations 0, 0, 4, -4,
# RSS = (0 + 0 + 16 + 16) / 2 = 16, df = 8 cells - (4 groups + 2 seeds - 1) = 3, s^2 = 16/3, s = 2.3094.
# A paired mean on 2 shared seeds has se = s * sqrt(2/2) = 2.3094 on 3 df.
# N = 4 alive, eta 2 -> cut c = 2: ranking A (11), B (21) | C (25), D (59); cut group B, first group out C.
# Comparisons (distinct pairs, m = 3):
#   D - B = (40, 36) -> +38, t = 16.45, p = 0.00049 -> Holm x3 = 0.0015  -> D out
#   A - C = (-12, -16) -> -14, t = -6.06, p = 0.0090 -> Holm x2 = 0.018  -> A in
#   B - C = (-2, -6) -> -4, t = -1.73, p = 0.182 -> Holm x1 = 0.182      -> B, C in doubt
# Uncorrected, A - C would be tested at 95%; Holm tests it at 1 - 0.05/2 (t_{0.9875, 3} = 4.18, +-9.6).
TABLE = {"A": (10, 12), "B": (20, 22), "C": (22, 28), "D": (60, 58)}
S = math.sqrt(16 / 3)


def race(table=TABLE, images=100, **config) -> Race:
    r = Race(RaceConfig(**{"max_images": 400, "grace": 100, "eta": 2, "log_scale": False, **config}))
    for g, values in table.items():
        assert r.add_group(g) == list(r.config.seeds[: r.config.min_seeds])
        for seed, v in enumerate(values):
            r.record(g, seed, images, v)
    return r


def by_group(decisions):
    return {d.group: d for d in decisions}


def test_milestones_and_value_at_first_eval_past_each():
    cfg = RaceConfig(max_images=400, grace=100, eta=2)
    assert cfg.milestones == (100, 200, 400)
    assert RaceConfig(max_images=384_000, grace=48_000, eta=3).milestones == (48_000, 144_000, 384_000)
    r = Race(cfg)
    r.add_group("A")
    for images, fid in [(90, 9.0), (150, 5.0), (260, 4.0), (400, 3.0)]:
        r.record("A", 0, images, fid)
    assert r._groups["A"].values[0] == {0: 5.0, 1: 4.0, 2: 3.0}  # 150 serves rung 0 (100), 260 rung 1 (200)


def test_pooled_noise_by_hand_and_against_least_squares():
    noise = pooled_noise({g: dict(enumerate(v)) for g, v in TABLE.items()})
    assert noise.df == 3 and noise.sd == pytest.approx(S)
    # Unbalanced (C lacks seed 1, D has seed 2): the backfit equals the least-squares additive fit.
    table = {"A": {0: 1.0, 1: 2.5, 2: 2.0}, "B": {0: 3.0, 1: 3.1}, "C": {0: 7.0, 2: 9.5}, "D": {1: 4.0, 2: 6.0}}
    cells = [(g, s, y) for g, row in table.items() for s, y in row.items()]
    x = np.zeros((len(cells), 4 + 3))
    for i, (g, s, _) in enumerate(cells):
        x[i, "ABCD".index(g)] = x[i, 4 + s] = 1
    y = np.array([c[2] for c in cells])
    rss = float(np.sum((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2))
    noise = pooled_noise(table)
    assert noise.df == len(cells) - (4 + 3 - 1)  # 9 cells, rank 6 -> 3
    assert noise.sd == pytest.approx(math.sqrt(rss / 3))
    # No residual degrees of freedom (every group alone on its own seeds): no pooled noise.
    assert pooled_noise({"A": {0: 1.0}, "B": {1: 2.0}}) is None


def test_holm_adjusts_step_down():
    adjusted, steps = holm([0.01, 0.04, 0.03])
    assert steps == [0, 2, 1]
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])  # 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 0.04)


def test_clear_loser_stopped_clear_winner_kept_tie_escalated():
    r = race()
    d = by_group(r.decide())
    # D: +38 vs the cut group B on 2 seeds, tested first at 1 - 0.05/3: t_{0.99167,3} = 4.857, +-11.2.
    assert d["D"].action == "stop" and d["D"].verdict == "out" and d["D"].vs_ref.ref == "B"
    assert d["D"].vs_ref.diff == pytest.approx(38.0) and d["D"].vs_ref.n == 2 and d["D"].vs_ref.df == 3
    assert d["D"].vs_ref.half_width == pytest.approx(student_t.ppf(1 - 0.05 / 6, 3) * S)
    assert d["D"].vs_ref.p == pytest.approx(3 * 2 * student_t.sf(38 / S, 3))
    assert not r.active("D") and r.status("D") == "stopped at rung 0 (100 images)"
    # A: -14 vs the first group out C, Holm p = 2 x 0.0090 = 0.018 -> clearly in, continues, no seed.
    assert d["A"].action == "continue" and d["A"].verdict == "in" and d["A"].vs_ref.ref == "C"
    assert d["A"].vs_ref.p == pytest.approx(2 * 2 * student_t.sf(14 / S, 3))
    assert r.seeds("A") == [0, 1]
    # B vs C: -4, p 0.18, in doubt; at 8 seeds the interval would be t_{0.975,3} * S * sqrt(2/8) = 3.67 < 4,
    # so seeds can resolve it: both sides of the pair get the next seed (2) and wait for it.
    assert d["B"].action == d["C"].action == "add_seed" and d["B"].seed == d["C"].seed == 2
    assert r.seeds("B") == r.seeds("C") == [0, 1, 2]
    assert "stopped: +38.0 ± 11.2 FID vs cut group B on 2 shared seeds" in d["D"].describe()
    # Nothing changes until the new seeds report: no new decisions, and B, C are not judged on two seeds.
    assert r.decide() == []
    r.record("B", 2, 100, 21.0)
    d = by_group(r.decide())  # B is judged again, but C's seed 2 is still on its way: B waits, no seed
    assert d["B"].action == "continue" and d["B"].verdict == "doubt" and r.seeds("B") == [0, 1, 2]
    assert "needs more seeds shared with C first" in d["B"].describe()
    r.record("C", 2, 100, 31.0)
    d = by_group(r.decide())
    # Now B - C on 3 seeds: (-2, -6, -10) -> -6 with the pooled noise of the new table.
    assert d["C"].vs_ref.n == 3 and d["C"].vs_ref.diff == pytest.approx(6.0)


def test_max_seeds_respected():
    r = race(max_seeds=2)
    d = by_group(r.decide())
    assert d["B"].action == d["C"].action == "continue" and d["B"].verdict == "doubt"
    assert "in doubt at max seeds (2)" in d["C"].describe()
    assert r.seeds("C") == [0, 1] and r.active("C")
    # The same doubt with max_seeds 4 is not resolvable (t_{0.975,3} * S * sqrt(2/4) = 5.2 > 4): no seed spent.
    d = by_group(race(max_seeds=4).decide())
    assert d["C"].verdict == "unresolved" and d["C"].action == "continue"


def test_escalation_stops_at_max_seeds():
    # C = (25, 31): B - C = (-5, -9) -> -7, p = 2 sf(7 / 2.309, 3) = 0.056 -> in doubt; at 3 seeds the interval
    # would be t_{0.975,3} * S * sqrt(2/3) = 6.0 < 7, so max_seeds = 3 is worth one seed each, and no more.
    r = race(dict(TABLE, C=(25, 31)), max_seeds=3)
    d = by_group(r.decide())
    assert d["B"].action == d["C"].action == "add_seed"
    for value_b, value_c in [(20.5, 20.0), (20.5, 20.0)]:
        r.record("B", 2, 100, value_b)
        r.record("C", 2, 100, value_c)
        assert all(x.action != "add_seed" for x in r.decide())
    assert len(r.seeds("B")) == len(r.seeds("C")) == 3
    assert "in doubt at max seeds (3)" in by_group(r.log[-2:])["C"].describe()


def test_missing_seed_is_missing_not_zero_nor_a_win():
    table = dict(TABLE, E=(15.0,))  # E reported seed 0 only; seed 1 failed before the rung
    r = Race(RaceConfig(max_images=400, grace=100, eta=2, log_scale=False))
    for g, values in table.items():
        r.add_group(g)
        for seed, v in enumerate(values):
            r.record(g, seed, 100, v)
    r.record("E", 1, 50, float("nan"))  # a non-finite report is the seed's failure
    d = by_group(r.decide())
    # E's mean is its one value (15), not (15 + 0) / 2: it ranks second, not first.
    assert d["E"].estimate.n == 1 and d["E"].estimate.mean == 15.0 and d["E"].rank == 2
    # One shared seed: no verdict rests on it; E and its reference share a new seed.
    assert d["E"].verdict == "doubt" and d["E"].vs_ref.n == 1 and d["E"].action == "add_seed"
    assert r._groups["E"].failed == {1: 50}
    assert r.status("E") == "continued, escalated to 3 seeds"


def test_group_whose_seeds_all_failed_is_failed_and_never_picked():
    r = race({"A": (10, 12), "B": (20, 25)})
    r.seed_failed("A", 0, 300)
    r.seed_failed("A", 1, 300)
    d = by_group(r.decide())
    assert d["A"].action == "fail" and d["A"].describe() == "A failed: all 2 seeds failed"
    assert r.status("A") == "failed" and not r.active("A")
    assert d["B"].verdict == "pending"  # B is alone in the race now: nothing to compare it with
    for s in (0, 1):
        r.record("B", s, 400, 30.0 + s)
    assert r.pick() == "B" and r.leader() == "B"


def test_pending_until_enough_groups_reached_the_rung():
    # Six groups in the race, c = 3: with only A and D at the rung, D cannot be out (3 groups must be there
    # to beat it), whatever its values.
    r = race({"A": (10, 12), "D": (60, 58)})
    for g in ("E", "F", "G", "H"):
        r.add_group(g)
    d = by_group(r.decide())
    assert d["D"].verdict == "pending" and d["D"].action == "continue" and r.active("D")
    assert "2 groups have results, 4 needed to judge" in d["D"].describe()


def test_crossing_curve_not_stopped_while_its_interval_overlaps_then_wins():
    # X starts slow: at rung 0 it ranks below the cut (mean 27 vs cut group B 21) but its seeds disagree
    # (X - B = +2, +10), so with the pooled noise of this table the difference covers zero: not stopped.
    table = {"A": (10, 12), "B": (20, 22), "X": (22, 32), "D": (60, 58)}
    r = race(table, max_seeds=2)
    d = by_group(r.decide())
    assert d["X"].rank == 3 and d["X"].vs_ref.ref == "B"
    lo = d["X"].vs_ref.diff - d["X"].vs_ref.half_width
    assert lo < 0 and d["X"].action == "continue" and r.active("X")
    # At the final rung X is the best of the groups still running: the pick.
    for g, vals in {"A": (8, 9), "B": (7, 8), "X": (4, 5)}.items():
        for s, v in enumerate(vals):
            r.record(g, s, 400, v)
    r.decide()
    assert r.pick() == "X" and r.leader() == "X" and r.status("X") == "leader"


def test_deferred_when_a_new_seed_would_arrive_after_the_others_finished():
    # The same doubt at rung 1 (200 images): a seed added now reaches 200 when the others are at 400.
    r = race(images=200)
    d = by_group(r.decide())
    assert d["B"].rung == 1 and d["B"].verdict == "deferred" and d["B"].action == "continue"
    assert r.seeds("B") == [0, 1]


def test_final_rung_races_for_the_pick():
    # At the final rung only the leader is kept (c = 1): D is out against A, B and C are compared with A.
    r = race(images=400)
    d = by_group(r.decide())
    assert all(x.cut == 1 for x in d.values())
    assert d["D"].action == "stop" and d["D"].vs_ref.ref == "A"
    assert d["A"].vs_ref.ref == "B"
    assert r.pick() == "A"


def test_mode_max_mirrors_mode_min():
    lo = race()
    hi = race({g: tuple(-v for v in vals) for g, vals in TABLE.items()}, mode="max")
    a, b = by_group(lo.decide()), by_group(hi.decide())
    assert {g: (d.action, d.verdict, d.rank) for g, d in a.items()} == {
        g: (d.action, d.verdict, d.rank) for g, d in b.items()
    }


def test_log_scale_compares_ratios():
    # Every B seed is 1.5x A's (A: 10, 20; B: 15, 30): log differences log(1.5) on both seeds.
    r = race({"A": (10, 20), "B": (15, 30), "C": (12, 21), "D": (40, 90)}, log_scale=True)
    d = by_group(r.decide())
    assert d["D"].vs_ref.log and d["D"].vs_ref.text("FID").startswith("+")
    c = Comparison("A", 2, math.log(1.5), None, 0.95, 1.0, 3, True)
    assert c.text("FID") == "+50.0%"
    with pytest.raises(ValueError, match="positive"):
        r.record("A", 0, 200, 0.0)


def test_paired_without_pooling_uses_the_pairs_own_spread():
    test = paired({0: 10.0, 1: 12.0, 2: 11.0}, {0: 8.0, 1: 9.0, 2: 10.0}, None)
    # differences 2, 3, 1: mean 2, sd 1, se 1/sqrt(3), df 2
    assert (test.n, test.diff, test.df) == (3, 2.0, 2) and test.se == pytest.approx(1 / math.sqrt(3))
    assert test.p == pytest.approx(2 * student_t.sf(2 * math.sqrt(3), 2))
    assert paired({0: 1.0}, {0: 2.0}, None).p == 1.0  # one shared seed: never significant


def test_resolvable_projects_the_interval_to_max_seeds():
    test = Paired(n=2, diff=4.0, se=S, df=3, p=0.18)
    assert resolvable(test, 8, 0.95, pooled=True)  # 3.182 * 2.309 * 0.5 = 3.67 < 4
    assert not resolvable(test, 4, 0.95, pooled=True)  # 3.182 * 2.309 * 0.707 = 5.20 > 4
    assert resolvable(Paired(1, 4.0, None, 0, 1.0), 8, 0.95, pooled=True)  # unknown noise: try


def test_state_round_trip_gives_the_same_later_decisions():
    a = race()
    a.decide()
    b = Race.from_dict(json.loads(json.dumps(a.to_dict())))
    assert b.to_dict() == a.to_dict()
    for r in (a, b):
        r.record("B", 2, 100, 21.0)
        r.record("C", 2, 100, 31.0)
        for g in ("A", "B", "C"):
            for s in r.seeds(g):
                r.record(g, s, 400, 30.0 + len(g) + s)
    assert [x.describe() for x in a.decide()] == [x.describe() for x in b.decide()]
    assert a.to_dict() == b.to_dict() and a.pick() == b.pick()


def test_invalid_inputs():
    with pytest.raises(ValueError):
        RaceConfig(max_images=400, grace=100, min_seeds=3, max_seeds=2)
    with pytest.raises(ValueError):
        RaceConfig(max_images=400, grace=100, mode="best")
    r = race()
    with pytest.raises(KeyError):
        r.record("A", 5, 100, 1.0)  # seed 5 was never handed out to A
    with pytest.raises(ValueError):
        r.add_group("A")


# Per group a mean curve of 4 evals at 100, 200, 300, 400 images; per (group, seed) a multiplicative offset.
curves = st.dictionaries(
    st.sampled_from("ABCDEF"), st.lists(st.floats(1.0, 500.0), min_size=4, max_size=4), min_size=3, max_size=6
)
offsets = st.lists(st.floats(0.7, 1.4), min_size=48, max_size=48)


def feed(r: Race, curves: dict, offsets: list, tick: int) -> None:
    """Seed s of group g (index i) reports eval k at tick s + k: later seeds lag, as escalated seeds do."""
    for i, (g, curve) in enumerate(curves.items()):
        for s in r.seeds(g):
            k = tick - s
            if 0 <= k < len(curve):
                r.record(g, s, 100 * (k + 1), curve[k] * offsets[8 * i + s])


@settings(max_examples=60, deadline=None)
@given(curves=curves, offsets=offsets, resume_at=st.integers(0, 11))
def test_properties_of_random_races(curves, offsets, resume_at):
    """Whatever the values: seeds stay within max_seeds and are handed out in order, stopped or failed groups
    get no decisions, the leader is never stopped, and a race resumed from its JSON state at any tick makes
    exactly the decisions of the race that never stopped."""
    plain = Race(RaceConfig(max_images=400, grace=100, eta=2, max_seeds=4))
    for g in curves:
        plain.add_group(g)
    resumed = Race.from_dict(plain.to_dict())
    for tick in range(12):
        if tick == resume_at:
            resumed = Race.from_dict(json.loads(json.dumps(resumed.to_dict())))
        feed(plain, curves, offsets, tick)
        feed(resumed, curves, offsets, tick)
        active = {g for g in curves if plain.active(g)}
        decisions = plain.decide()
        assert [d.describe() for d in decisions] == [d.describe() for d in resumed.decide()]
        for d in decisions:
            assert d.group in active, "a stopped or failed group was decided on"
        for g in curves:
            assert plain.seeds(g) == list(range(len(plain.seeds(g)))) and len(plain.seeds(g)) <= 4
        if (leader := plain.leader()) is not None:
            assert plain.active(leader)
    assert plain.pick() == resumed.pick()


def test_import_loads_no_ray_polars_click_wandb_or_torch():
    code = (
        "import sys, raydrift.orchestration.race; "
        "print([m for m in ('ray', 'polars', 'click', 'wandb', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
