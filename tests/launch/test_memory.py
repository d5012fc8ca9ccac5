"""run --dry-run's memory estimate: printed for RL and SFT recipes, compared with the profile's gpu_memory_gb (a
warning when it exceeds it; a profile without it cannot be compared); the parts follow the settings."""

from __future__ import annotations

import pytest

from igpo_kit.models.memory import LLADA_8B, Workload, estimate_peak


def _lines(recipe, *bindings, resources=None, overrides=(), executor="slurm"):
    from igpo_kit.launch.memory import memory_lines
    from igpo_kit.runner import prepare

    plan = prepare(recipe, [], list(bindings), [], runs_dir="/nonexistent-runs")
    return memory_lines(plan, "h100", resources, list(overrides), executor)


def test_paper_rl_recipe_fits_an_h100_and_a_small_gpu_is_warned():
    lines = _lines("igpo_full.gin")
    assert lines[0][1].startswith("estimated peak memory per GPU: ") and "64 process(es), ZeRO 2" in lines[0][1]
    assert "with gradient checkpointing" in lines[0][1] and "fits the 80 GB of a GPU in h100/rl" in lines[-1][1]
    small = _lines("igpo_full.gin", overrides=["gpu_memory_gb=16"])
    assert small[-1][0] == "yellow" and "exceeds the 16 GB of a GPU" in small[-1][1]


def test_a_profile_without_gpu_memory_cannot_compare(tmp_path, monkeypatch):
    from igpo_kit.launch.memory import memory_lines
    from igpo_kit.runner import prepare

    cluster = tmp_path / "site.toml"
    cluster.write_text('description = "no GPU memory given"\ngpus_per_node = 8\n')
    plan = prepare("sft_length_aligned.gin", [], [], [], runs_dir="/nonexistent-runs")
    lines = memory_lines(plan, str(cluster), "sft", [], "slurm")
    assert lines[0][1].startswith("estimated peak memory per GPU: ")  # the estimate is still printed
    assert lines[-1][0] == "yellow" and "cannot compare" in lines[-1][1] and "no gpu_memory_gb" in lines[-1][1]


def test_other_jobs_print_nothing():
    assert _lines("tiny/eval.gin") == []


def test_parts_follow_the_settings():
    base = Workload(rows=8, seq_len=512, logit_positions=256, rollout_rows=8, rollout_positions=512,
                    trained=None, weight_bytes=2, bf16_compute=True)
    full = estimate_peak(LLADA_8B, base)
    assert 7.9e9 < LLADA_8B.n_params < 8.1e9
    assert full["optimizer_gb"] == pytest.approx(8 * LLADA_8B.n_params / 1e9)  # two fp32 moments
    ckpt = estimate_peak(LLADA_8B, Workload(**{**base.__dict__, "gradient_checkpointing": True}))
    assert ckpt["activations_gb"] < full["activations_gb"] / 5
    zero = estimate_peak(LLADA_8B, Workload(**{**base.__dict__, "zero_stage": 2, "world": 64}))
    assert zero["optimizer_gb"] == pytest.approx(full["optimizer_gb"] / 64)
    lora = LLADA_8B.lora_params(128, ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"])
    assert 0.3e9 < lora < 0.4e9  # r 128 on every linear of LLaDA-8B (and its LM head, also named ff_out)


def test_dream_recipe_is_estimated_from_dream_7b_shapes():
    """igpo_dream.gin used to print "no estimate (unknown architecture)"."""
    lines = _lines("igpo_dream.gin")
    assert lines[0][1].startswith("estimated peak memory per GPU: "), lines
    assert "Dream-v0-Instruct-7B shapes" in lines[0][1] and "fits the 80 GB of a GPU in h100/rl" in lines[-1][1]


def test_dream_7b_architecture_counts_qwen2_5_7b():
    from igpo_kit.config.memory import DREAM_7B_CONFIG, dream_architecture

    arch = dream_architecture(DREAM_7B_CONFIG)
    assert arch.n_params == 7_615_616_512  # Qwen2.5-7B (Dream's base): GQA k/v, q/k/v biases, untied head
    assert arch.linear_shapes["k_proj"][0] == (3584, 512) and len(arch.linear_shapes["q_proj"]) == 28


def test_dream_7b_shapes_are_those_of_the_real_config(shared_dir):
    import json

    from igpo_kit.config.memory import DREAM_7B_CONFIG

    real = json.loads((shared_dir / "models" / "dream" / "config.json").read_text())
    assert {k: real[k] for k in DREAM_7B_CONFIG} == DREAM_7B_CONFIG


def test_a_local_dream_config_is_counted_as_built(tmp_path):
    import gin

    from igpo_kit.config.memory import architecture
    from igpo_kit.models.tiny import save, tiny

    model = tiny(architecture="dream")
    save(model, tmp_path / "dream")
    gin.clear_config()
    try:  # the estimate reads the bound @model.dream(path=...) reference, as --dry-run does
        gin.parse_config(["import igpo_kit.components.model", f"x/model.dream.path = '{tmp_path / 'dream'}'"])
        arch, where = architecture(gin.config.parse_value("@x/model.dream()"))
    finally:
        gin.clear_config()
    assert where.endswith("config.json")
    assert arch.n_params == sum(p.numel() for p in model.network.parameters())
