import multiprocessing as mp
import os
import sys
import textwrap
import time
import types

import pytest

from igpo_kit.grading import GradingPool, grade_many, graders

# Test graders must unpickle in forked workers: put them in a module registered in sys.modules (fork copies it),
# independent of how pytest imports this file.
_SRC = textwrap.dedent(
    """
    import os, time
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Trouble:
        name = "trouble"
        role = "correctness"
        def score(self, completion, gold):
            if completion == "hang":
                time.sleep(600)          # not interrupted by anything inside the worker
            if completion == "crash":
                os._exit(3)              # the worker process dies
            if completion == "raise":
                raise RuntimeError("grader bug")
            if completion == "nan":
                return float("nan")
            return 1.0 if completion == gold else 0.0
    """
)
_mod = types.ModuleType("_igpo_test_pool_graders")
exec(compile(_SRC, "_igpo_test_pool_graders", "exec"), _mod.__dict__)
sys.modules[_mod.__name__] = _mod
Trouble = _mod.Trouble


def boxed(x: str) -> str:
    return f"<reasoning>\nwork\n</reasoning>\n<answer>\n\\boxed{{{x}}}\n</answer>"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(pid, 0); check its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_pool_scores_match_serial():
    g = graders.math_verify(fast_numeric=False)  # exercise math-verify inside the workers
    golds = [str(i * 37) for i in range(40)]
    comps = [boxed(f"{int(x):,}") if i % 3 else boxed(str(int(x) + 1)) for i, x in enumerate(golds)]
    serial = [g.score(c, x) for c, x in zip(comps, golds)]
    report = grade_many(g, comps, golds, workers=2, in_process=False)
    assert report.scores == serial
    assert report.timeouts == 0 and report.errors == 0 and not report.in_process
    assert sum(report.scores) == 26  # i % 3 != 0 are right


def test_pathological_latex_times_out_and_scores_zero():
    g = graders.math_verify()
    comps = [boxed("\\prod_{k=1}^{3000}(1+1/k^2)"), boxed("3"), boxed("4"), boxed("3")] * 2
    golds = ["3"] * len(comps)
    t0 = time.monotonic()
    report = grade_many(g, comps, golds, timeout_s=1.0, workers=2, in_process=False)
    elapsed = time.monotonic() - t0
    assert report.timeouts == 2 and report.timeout_indices == [0, 4]
    assert report.scores == [0.0, 1.0, 0.0, 1.0] * 2
    assert report.errors == 0
    assert elapsed < 6.0


def test_hung_worker_is_killed_and_replaced():
    comps = ["a", "hang", "b", "c", "d", "hang", "e", "f"]
    golds = ["a", "x", "b", "x", "d", "x", "e", "f"]
    with GradingPool(workers=2) as pool:
        t0 = time.monotonic()
        report = pool.grade(Trouble(), comps, golds, timeout_s=1.0)
        elapsed = time.monotonic() - t0
        assert report.timeouts == 2 and report.timeout_indices == [1, 5]
        assert report.scores == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
        assert pool.respawns == 2
        assert elapsed < 8.0
        pids = pool.pids
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        # the pool keeps working after the kills
        assert pool.grade(Trouble(), ["z"], ["z"]).scores == [1.0]
    assert not any(_alive(p) for p in pids)


def test_errors_and_crashes_score_zero_and_are_counted():
    comps = ["a", "raise", "b", "crash", "c", "nan"]
    golds = ["a", "a", "b", "a", "c", "a"]
    report = grade_many(Trouble(), comps, golds, timeout_s=5.0, workers=2)
    assert report.scores == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert report.errors == 3 and report.error_indices == [1, 3, 5]
    assert any("grader bug" in m for m in report.error_messages)
    assert any("worker process died" in m for m in report.error_messages)
    assert report.timeouts == 0


def test_no_leaked_processes():
    before = {p.pid for p in mp.active_children()}
    grade_many(graders.math_verify(), [boxed("1")] * 10, ["1"] * 10, in_process=False)
    grade_many(Trouble(), ["hang", "a"], ["a", "a"], timeout_s=1.0, in_process=False)
    after = {p.pid for p in mp.active_children()}
    assert after <= before


def test_in_process_paths():
    # pure graders and tiny inputs of math-verify in the main thread skip the pool
    r = grade_many(graders.gsm8k(), [boxed("18")] * 20, ["18"] * 20)
    assert r.in_process and r.scores == [1.0] * 20
    r = grade_many(graders.math_verify(), [boxed("18.0"), boxed("\\prod_{k=1}^{3000}(1+1/k^2)")], ["18", "3"], timeout_s=0.5)
    assert r.in_process and r.scores == [1.0, 0.0] and r.timeouts == 1
    # unknown graders always go through the pool (no way to bound them in-process)
    r = grade_many(Trouble(), ["a"], ["a"])
    assert not r.in_process and r.scores == [1.0]


def test_progress_bar_and_edge_cases(capfd):
    r = grade_many(graders.math_verify(), [boxed("1"), boxed("2")] * 5, ["1"] * 10, progress=True, in_process=False)
    assert r.scores == [1.0, 0.0] * 5
    assert "grading" in capfd.readouterr().err
    assert grade_many(graders.gsm8k(), [], []).scores == []
    with pytest.raises(ValueError):
        grade_many(graders.gsm8k(), ["a"], [])
    with pytest.raises(ValueError):
        grade_many(graders.gsm8k(), ["a"], ["a"], timeout_s=0)
    assert r.answers_per_s > 0


def test_rest_of_a_batch_is_requeued_after_a_kill():
    n = 60  # batches of several answers per worker message
    comps = [str(i) for i in range(n)]
    comps[7] = "hang"
    comps[33] = "crash"
    comps[50] = "hang"
    golds = [str(i) for i in range(n)]
    report = grade_many(Trouble(), comps, golds, timeout_s=1.0, workers=2)
    assert report.timeout_indices == [7, 50]
    assert report.error_indices == [33]
    assert report.scores == [0.0 if i in (7, 33, 50) else 1.0 for i in range(n)]


def test_quick_scores_are_decided_in_process_and_the_rest_pooled():
    g = graders.math_verify()
    comps = [boxed("1,234"), "no box", boxed("\\frac{1}{2}"), boxed("\\prod_{k=1}^{3000}(1+1/k^2)"), boxed("7")]
    golds = ["1234", "1", "0.5", "3", "8"]
    assert [g.quick_score(c, x) for c, x in zip(comps, golds)] == [1.0, 0.0, None, None, 0.0]
    report = grade_many(g, comps * 4, golds * 4, timeout_s=1.0, workers=2)
    assert report.scores == [1.0, 0.0, 1.0, 0.0, 0.0] * 4
    assert report.timeout_indices == [3, 8, 13, 18] and report.timeouts == 4
    assert not report.in_process  # 8 undecided answers went to the pool
    small = grade_many(g, comps, golds, timeout_s=0.5)
    assert small.in_process and small.timeout_indices == [3]  # 2 undecided: main thread


def test_math_grader_pool_stays_warm_across_calls():
    """The RL loop's usage: one pool, many grading calls; workers are forked once, after math-verify was warmed."""
    g = graders.math()
    comps = [boxed(x) for x in ("\\frac{\\sqrt{3}}{3}", "7i - 2", "\\text{(B)}", "x^2 + 1")] * 3
    golds = ["\\sqrt{3}/3", "-2 + 7i", "\\text{(C)}", "x^2+1"] * 3
    with GradingPool(workers=2) as pool:
        first = grade_many(g, comps, golds, pool=pool, timeout_s=30)
        pids = pool.pids
        second = grade_many(g, comps, golds, pool=pool, timeout_s=30)
        assert pool.pids == pids and pool.respawns == 0
    assert first.scores == second.scores == [1.0, 1.0, 0.0, 1.0] * 3
    assert not first.in_process and graders._MV_STATE.get("warm")
