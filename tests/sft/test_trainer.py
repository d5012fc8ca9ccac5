"""SFT trainer: the loss goes down, clipping is applied, resumption is exact, the final model reloads."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.checkpoint import latest_name, list_checkpoints
from igpo_kit.data.prompts import plain
from igpo_kit.data.synthetic import arithmetic
from igpo_kit.errors import ConfigError
from igpo_kit.models.tiny import tiny
from igpo_kit.sft.settings import SFTSettings
from igpo_kit.sft.trainer import batch_indices, epoch_permutation, train_sft

ARCH = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


def _model():
    return tiny(seed=0, **ARCH)


def _examples(n=4):
    return arithmetic(n, difficulty=1, seed=0, trace_style="short")


def _kwargs(**over):
    kw = dict(
        max_length=160, batch_size=2, grad_accum=2, epochs=1.0, max_steps=6, lr=3e-3, weight_decay=0.01,
        warmup_steps=2, min_lr=1e-5, decay_fraction=0.3, max_grad_norm=1.0, seed=1, checkpoint_every=2,
    )
    kw.update(over)
    return {"settings": SFTSettings(**kw)}


def _strip(records):
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def test_loss_decreases(tmp_path):
    model = _model()
    records = []
    res = train_sft(model, _examples(4), plain(), run_dir=tmp_path, log=records.append,
                    **_kwargs(max_steps=30, grad_accum=1, batch_size=4, lr=1e-2, warmup_steps=0, decay_fraction=0.0,
                              checkpoint_every=0, weight_decay=0.0))
    assert res.completed and res.step == 30 and len(records) == 30
    assert [r["step"] for r in records] == list(range(1, 31))
    first = sum(r["nll"] for r in records[:5]) / 5
    last = sum(r["nll"] for r in records[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    for r in records:
        assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(r) and r["tokens_per_s"] > 0


def test_resume_equals_uninterrupted(tmp_path):
    exs = _examples(5)
    full_log = []
    full = train_sft(_model(), exs, plain(), run_dir=tmp_path / "a", log=full_log.append, **_kwargs())
    assert full.completed and full.resumed_from is None

    part_log = []
    part = train_sft(_model(), exs, plain(), run_dir=tmp_path / "b", log=part_log.append, stop_at_step=3,
                     **_kwargs())
    assert not part.completed and part.step == 3 and part.model_dir is None
    assert latest_name(tmp_path / "b") == "step_3"
    rest = train_sft(_model(), exs, plain(), run_dir=tmp_path / "b", log=part_log.append, **_kwargs())
    assert rest.completed and rest.resumed_from == 3 and rest.step == 6
    assert _strip(part_log) == _strip(full_log)

    a = tiny(path=str(full.model_dir)).network.state_dict()
    b = tiny(path=str(rest.model_dir)).network.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and the weights really moved from the initialisation
    init = _model().network.state_dict()
    assert any(not torch.equal(a[k], init[k]) for k in a)

    # a completed run is a no-op when called again
    again_log = []
    again = train_sft(_model(), exs, plain(), run_dir=tmp_path / "b", log=again_log.append, **_kwargs())
    assert again.completed and again_log == [] and again.resumed_from == 6
    assert len(list_checkpoints(tmp_path / "b")) <= 2


def test_resume_with_other_data_settings_refused(tmp_path):
    exs = _examples(4)
    train_sft(_model(), exs, plain(), run_dir=tmp_path, stop_at_step=1, **_kwargs())
    with pytest.raises(ConfigError, match="batch_size"):
        train_sft(_model(), exs, plain(), run_dir=tmp_path, **_kwargs(batch_size=1))


def test_single_process_checkpoints_resume_and_world_size_is_checked(tmp_path):
    """Checkpoints hold one generator state per rank and the world size; a checkpoint of the single-process trainer
    (one generator dict, no world_size) still resumes exactly; one written by 2 processes is refused in 1."""
    exs = _examples(4)
    full = train_sft(_model(), exs, plain(), run_dir=tmp_path / "a", **_kwargs())
    train_sft(_model(), exs, plain(), run_dir=tmp_path / "b", stop_at_step=2, **_kwargs())
    ck = tmp_path / "b/checkpoints/step_2/state.pt"
    state = torch.load(ck, weights_only=True)
    assert state["world_size"] == 1 and len(state["generators"]) == 1 and state["config"]["world_size"] == 1
    old = {k: v for k, v in state.items() if k != "world_size"}
    old["generators"] = state["generators"][0]
    new_keys = ("world_size", "deepspeed", "mixed_precision")
    old["config"] = {k: v for k, v in state["config"].items() if k not in new_keys}
    torch.save(old, ck)
    rest = train_sft(_model(), exs, plain(), run_dir=tmp_path / "b", **_kwargs())
    assert rest.resumed_from == 2 and rest.completed
    a = tiny(path=str(full.model_dir)).network.state_dict()
    b = tiny(path=str(rest.model_dir)).network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    ck = tmp_path / "b/checkpoints/step_6/state.pt"
    state = torch.load(ck, weights_only=True)
    state["config"]["world_size"], state["generators"] = 2, state["generators"] * 2
    torch.save(state, ck)
    with pytest.raises(ConfigError, match="world_size=2"):
        train_sft(_model(), exs, plain(), run_dir=tmp_path / "b", **_kwargs())


def test_gradient_clipping_applied(tmp_path, monkeypatch):
    norms = []
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    records = []
    train_sft(_model(), _examples(2), plain(), run_dir=tmp_path, log=records.append,
              **_kwargs(max_steps=2, max_grad_norm=1e-3, checkpoint_every=0))
    assert all(r["clipped"] == 1 and r["grad_norm"] > 1e-3 for r in records)
    assert all(n <= 1e-3 * 1.001 for n in norms)


def test_data_order():
    p0, p1 = epoch_permutation(3, 0, 5), epoch_permutation(3, 1, 5)
    assert sorted(p0.tolist()) == list(range(5)) and not torch.equal(p0, p1)
    # the stream crosses epochs: positions 3..7 = perm0[3:5] + perm1[0:3]
    assert batch_indices(3, 3, 5, 5).tolist() == p0[3:].tolist() + p1[:3].tolist()


def test_sft_with_checkpointing_equals_without(tmp_path):
    logs = {}
    for gc in (False, True):
        logs[gc] = []
        train_sft(tiny(seed=0, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
                  arithmetic(4, difficulty=1, seed=0, trace_style="short"), plain(), run_dir=tmp_path / f"gc{gc}",
                  settings=SFTSettings(max_length=160, batch_size=2, max_steps=2, lr=1e-2, warmup_steps=0,
                                       gradient_checkpointing=gc), log=logs[gc].append)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rs]  # noqa: E731
    a, b = strip(logs[False]), strip(logs[True])
    assert len(a) == 2 and [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)
    assert [r["grad_norm"] for r in a] == pytest.approx([r["grad_norm"] for r in b], rel=1e-5)


def test_progress_lines_with_time_left(tmp_path, capsys, monkeypatch):
    """Not a terminal (pytest captures stderr): plain ``progress:`` lines with the time left, then a final one."""
    monkeypatch.setenv("IGPO_KIT_PROGRESS_EVERY", "0")
    train_sft(_model(), _examples(4), plain(), run_dir=tmp_path, **_kwargs(max_steps=3, checkpoint_every=0))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("progress: sft steps")]
    assert lines[0].startswith("progress: sft steps 1/3 (33%)  elapsed ") and "  left ~" in lines[0]
    assert "  loss " in lines[0]
    assert lines[-1].startswith("progress: sft steps 3/3 (100%)  done in ")
