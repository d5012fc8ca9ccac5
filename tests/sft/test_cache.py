"""The SFT cache: the key follows the content (weights, data, prompt, settings); a finished run is loaded, not rerun."""

from __future__ import annotations

import json

import pytest
import torch

from igpo_kit.data.prompts import plain
from igpo_kit.data.synthetic import arithmetic
from igpo_kit.sft.cache import cached_sft, sft_key

SETTINGS = dict(max_length=160, batch_size=2, max_steps=3, lr=1e-3, warmup_steps=1, checkpoint_every=2)


def test_key_follows_the_content(tiny_lm_factory):
    data = arithmetic(n=6, difficulty=1)
    prompt = plain(prefill="<reasoning>")
    key = sft_key(tiny_lm_factory(seed=0), data, prompt, SETTINGS)
    assert key == sft_key(tiny_lm_factory(seed=0), list(data), plain(prefill="<reasoning>"), dict(SETTINGS))
    assert key != sft_key(tiny_lm_factory(seed=1), data, prompt, SETTINGS)  # other initial weights
    assert key != sft_key(tiny_lm_factory(seed=0), data[:5], prompt, SETTINGS)
    assert key != sft_key(tiny_lm_factory(seed=0), data, plain(), SETTINGS)
    assert key != sft_key(tiny_lm_factory(seed=0), data, prompt, {**SETTINGS, "lr": 2e-3})


def test_second_call_loads_the_trained_weights(tiny_lm_factory, tmp_path):
    data = arithmetic(n=6, difficulty=1)
    prompt = plain(prefill="<reasoning>")
    first_model = tiny_lm_factory(seed=0)
    first = cached_sft(first_model, data, prompt, tmp_path, **SETTINGS)
    assert not first.reused and first.steps_run == 3 and first.run_dir == tmp_path / f"sft-{first.key}"
    assert len((first.run_dir / "metrics.jsonl").read_text().splitlines()) == 3

    again = tiny_lm_factory(seed=0)
    second = cached_sft(again, data, prompt, tmp_path, **SETTINGS)
    assert second.reused and second.steps_run == 0 and second.key == first.key
    for a, b in zip(first_model.network.state_dict().values(), again.network.state_dict().values()):
        assert torch.equal(a, b)

    other = cached_sft(tiny_lm_factory(seed=0), data, prompt, tmp_path, **{**SETTINGS, "max_steps": 2})
    assert not other.reused and other.key != first.key


def test_interrupted_sft_resumes_under_the_same_key(tiny_lm_factory, tmp_path):
    from igpo_kit.errors import RunError

    data = arithmetic(n=6, difficulty=1)
    prompt = plain(prefill="<reasoning>")
    with pytest.raises(RunError, match="stopped at step 2 of 3"):
        cached_sft(tiny_lm_factory(seed=0), data, prompt, tmp_path, stop_at_step=2, **SETTINGS)
    resumed = cached_sft(tiny_lm_factory(seed=0), data, prompt, tmp_path, **SETTINGS)
    assert not resumed.reused and resumed.steps_run == 1 and resumed.result.resumed_from == 2
    lines = (resumed.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]


BUILDER = """
import json, sys
import torch
torch.set_num_threads(1)
from igpo_kit.data.prompts import plain
from igpo_kit.data.synthetic import arithmetic
from igpo_kit.models.tiny import tiny
from igpo_kit.sft.cache import cached_sft

settings = json.loads(sys.argv[2])
model = tiny(seed=0)
sft = cached_sft(model, arithmetic(n=6, difficulty=1), plain(prefill="<reasoning>"), sys.argv[1],
                 notify=lambda m: print("NOTIFY", m, flush=True), **settings)
digest = sum(float(t.double().sum()) for t in model.network.state_dict().values())
print("RESULT", json.dumps({"key": sft.key, "reused": sft.reused, "steps_run": sft.steps_run, "digest": digest}),
      flush=True)
"""


def test_concurrent_builders_train_once_and_the_others_wait_and_load(tiny_lm_factory, tmp_path):
    """Two processes ask for the same SFT while a third holds its lock: both wait (neither fails), then exactly one
    trains and the other loads its weights (sweep cells starting together from the same cached SFT start)."""
    import os
    import subprocess
    import sys
    import time

    from igpo_kit.runs import RunLock

    data = arithmetic(n=6, difficulty=1)
    prompt = plain(prefill="<reasoning>")
    key = sft_key(tiny_lm_factory(seed=0), data, prompt, SETTINGS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IGPO_KIT_PROGRESS": "off"}
    holder = RunLock(tmp_path / f"sft-{key}").acquire()  # a builder that is "still training"
    try:
        procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(tmp_path), json.dumps(SETTINGS)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                 for _ in range(2)]
        waiting = []
        for p in procs:  # each says whom it waits for before it blocks
            for line in p.stdout:
                if line.startswith("NOTIFY"):
                    waiting.append(line)
                    break
            else:
                pytest.fail(f"builder exited without waiting: rc {p.wait()}")
        assert all(f"SFT {key}: waiting for pid {os.getpid()}" in w for w in waiting), waiting
        time.sleep(0.2)
        assert all(p.poll() is None for p in procs)  # blocked, not failed
    finally:
        holder.release()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
        results.append(json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT"))[len("RESULT "):]))
    assert sorted(r["reused"] for r in results) == [False, True], results  # one trained, one loaded
    trained = next(r for r in results if not r["reused"])
    assert trained["steps_run"] == 3 and {r["key"] for r in results} == {key}
    assert results[0]["digest"] == results[1]["digest"]  # the loader got the trainer's weights
    assert len((tmp_path / f"sft-{key}" / "metrics.jsonl").read_text().splitlines()) == 3  # trained once
