"""Balanced inpainting across processes (igpo_kit.rl.balance): two gloo processes on CPU spread the inpainting rows of
both processes' all-wrong groups evenly; every group comes out exactly as in a one-process run and as under the
other assignment of rows to ranks (a row's outcome depends on its own seed only); replacement and metrics per group
are those of one process.

The processes are this file run as a script (``--rank r --world 2``), one torch thread each.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from igpo_kit.rl.balance import spread

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
TIMINGS = ("rollout_s", "inpaint_s", "grading_s")


class PlusAndEquals:
    """A deterministic test grader: correct iff the completion holds both '+' and '=' (random completions of the tiny
    model rarely do; inpainted ones often do, from the revealed trace chunks, so groups trigger and rows get
    replaced)."""

    pure = True

    def score(self, completion: str, answer: str) -> float:
        return float("+" in completion and "=" in completion)


def reversed_spread(n_rows: int, world: int) -> list[list[int]]:
    """The other assignment: rank r samples what :func:`spread` gives rank ``world - 1 - r``."""
    return spread(n_rows, world)[::-1]


def _collect(owner: int, exchange):
    """What process ``owner`` collects: its examples (3 for rank 0, 1 for rank 1) and generators."""
    from igpo_kit.components import prompt
    from igpo_kit.data.synthetic import arithmetic
    from igpo_kit.hints.chunking import paper
    from igpo_kit.models.tiny import tiny
    from igpo_kit.rl.replacement import igpo
    from igpo_kit.rl.rollout import RolloutSetup, collect
    from igpo_kit.sampling.generate import low_confidence

    model = tiny(seed=0)
    examples = arithmetic(n=4, seed=3)
    mine = examples[:3] if owner == 0 else examples[3:]
    setup = RolloutSetup(prompt=prompt.llada_reasoning(), sampler=low_confidence(gen_length=32, block_length=16,
                         steps=16, temperature=1.0), grader=PlusAndEquals(),
                         hint_chunker=paper(min_chunk_size=3, max_chunk_size=6), replacement_policy=igpo(0.5),
                         group_size=4, hint_ratio_low=0.4, hint_ratio_high=0.8, grade_workers=1)
    gens = {name: torch.Generator().manual_seed(1000 * owner + i)
            for i, name in enumerate(("data", "rollout", "hints", "replace", "logprob"))}
    b = collect(model, mine, setup, gens, exchange=exchange)
    return {"sequences": b.sequences, "hint_mask": b.hint_mask, "correctness": b.correctness, "texts": b.texts,
            "stats": {k: v for k, v in b.stats.items() if k not in TIMINGS}}


def worker(rank: int, world: int, port: int, out: Path) -> None:
    from igpo_kit.rl.balance import Exchange

    torch.set_num_threads(1)
    if world == 1:  # the one-process reference: each owner's inputs alone
        torch.save({owner: _collect(owner, Exchange(0, 1)) for owner in (0, 1)}, out)
        return
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world)
    try:
        res = {"spread": _collect(rank, Exchange(rank, world)),
               "reversed": _collect(rank, Exchange(rank, world, assign=reversed_spread))}
    finally:
        torch.distributed.destroy_process_group()
    torch.save(res, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("balance")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    port = _free_port()
    cmds = {name: [sys.executable, str(HERE), "--rank", str(r), "--world", str(w), "--port", str(port),
                   "--out", str(tmp / f"{name}.pt")] for name, r, w in (("r0", 0, 2), ("r1", 1, 2), ("one", 0, 1))}
    procs = {name: subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for name, cmd in cmds.items()}
    for name, p in procs.items():
        output, _ = p.communicate(timeout=300)
        assert p.returncode == 0, f"{name}: {output[-3000:]}"
    return {name: torch.load(tmp / f"{name}.pt", weights_only=False) for name in procs}


def _same(a: dict, b: dict) -> None:
    for key in ("sequences", "hint_mask", "correctness"):
        assert torch.equal(a[key], b[key]), key
    assert a["texts"] == b["texts"]
    stats_a = {k: v for k, v in a["stats"].items() if k != "inpaint_rows_sampled"}
    assert stats_a == {k: v for k, v in b["stats"].items() if k != "inpaint_rows_sampled"}


def test_spread_is_even_and_covers_every_row():
    for n in range(0, 20):
        for world in (1, 2, 3, 8):
            shares = spread(n, world)
            assert sorted(i for s in shares for i in s) == list(range(n))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_rows_are_spread_over_both_processes(results):
    by_rank = [results["r0"]["spread"], results["r1"]["spread"]]
    triggered = [r["stats"]["triggered_groups"] for r in by_rank]
    assert triggered[0] >= 2 and triggered[1] >= 1  # rank 0 owns more all-wrong groups than rank 1...
    total = 4 * sum(triggered)
    sampled = [r["stats"]["inpaint_rows_sampled"] for r in by_rank]
    assert sum(sampled) == total and abs(sampled[0] - sampled[1]) <= 1  # ...but both sample half of all the rows
    assert sampled[1] > 4 * triggered[1]  # rank 1 inpainted rows of rank 0's groups


def test_a_group_comes_out_the_same_whichever_process_inpainted_it(results):
    """2 processes (even spread) == 2 processes (the other assignment) == 1 process, group by group; some rows were
    replaced, so replacement is covered too."""
    for rank, name in ((0, "r0"), (1, "r1")):
        _same(results[name]["spread"], results[name]["reversed"])
        _same(results[name]["spread"], results["one"][rank])
    assert sum(results[n]["spread"]["stats"]["replaced_rows_K"] for n in ("r0", "r1")) > 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    worker(a.rank, a.world, a.port, a.out)
