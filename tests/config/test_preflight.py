"""Preflight (:mod:`igpo_kit.config.preflight`) through the CLI: the prompt length of a local checkpoint (read
without its weights) and the dataset size against the planned processes fail ``validate`` / ``run`` with exit 2,
one line, before any run directory exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app

runner = CliRunner()
EVAL = "tiny/eval.gin"  # 4 rows of recipes/data/gsm8k_sample.jsonl, gen_length 64
GEN_LENGTH = 64


def sample() -> list:
    from igpo_kit.data.datasets import gsm8k

    return list(gsm8k(path="recipes/data/gsm8k_sample.jsonl", limit=4))


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def error_lines(r) -> list[str]:
    """The error lines of a CliRunner result (its output holds stdout and stderr); asserts there is no other line."""
    lines = r.output.strip().splitlines()
    assert not [line for line in lines if not line.startswith("error:")], r.output
    return lines


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny native LLaDA / Dream checkpoint folders (``save()``: config.json, tokenizer, weights) of 4096 positions,
    and the longest GSM8K-sample prompt of each in its own tokens (what the sampler would get)."""
    from igpo_kit.data.prompts import llada_reasoning
    from igpo_kit.models.tiny import save, tiny

    examples = sample()
    out = {}
    for family in ("llada", "dream"):
        model = tiny(architecture=family, max_positions=4096)
        folder = save(model, tmp_path_factory.mktemp(family) / "ckpt")
        prompt = llada_reasoning()
        lengths = {ex.id: len(model.chat_prompt(prompt.messages(ex), prompt.prefill)) for ex in examples}
        longest = max(lengths, key=lengths.get)
        out[family] = (folder, longest, lengths[longest])
    return out


def _set_max(folder: Path, family: str, maximum: int, dst: Path, weights: bool = True) -> Path:
    """A copy of ``folder`` whose config.json allows ``maximum`` positions (optionally without the weights)."""
    import shutil

    shutil.copytree(folder, dst)
    raw = json.loads((dst / "config.json").read_text())
    raw["max_sequence_length" if family == "llada" else "max_position_embeddings"] = maximum
    (dst / "config.json").write_text(json.dumps(raw))
    if not weights:
        for f in dst.glob("*.safetensors"):
            f.unlink()
    return dst


@pytest.mark.parametrize("family,key", [("llada", "max_sequence_length"), ("dream", "max_position_embeddings")])
def test_prompt_too_long_for_a_local_checkpoint_fails_before_the_run_dir(checkpoints, family, key, tmp_path):
    folder, longest, n = checkpoints[family]
    # one position short of the longest prompt + gen_length; no weights in the folder: preflight never loads them
    ckpt = _set_max(folder, family, n + GEN_LENGTH - 1, tmp_path / "ckpt", weights=False)
    binds = ["-b", f"entry.evaluate.model = @model.{family}()", "-b", f"model.{family}.path = '{ckpt}'"]
    runs = tmp_path / "runs"
    for args in (["run", EVAL, "--runs-dir", runs, *binds], ["run", EVAL, "--dry-run", "--runs-dir", runs, *binds],
                 ["validate", EVAL, *binds]):
        r = invoke(*args)
        assert r.exit_code == 2, r.output
        (line,) = error_lines(r)
        assert f"the longest prompt, {longest} (recipes/data/gsm8k_sample.jsonl), is {n} tokens" in line, line
        assert f"+ gen_length {GEN_LENGTH} = {n + GEN_LENGTH}, more than the model's {n + GEN_LENGTH - 1} " \
               f"positions ({key} in {ckpt / 'config.json'})" in line, line
        assert not runs.exists()


def test_prompt_that_fits_exactly_passes(checkpoints, tmp_path):
    folder, _, n = checkpoints["llada"]
    ckpt = _set_max(folder, "llada", n + GEN_LENGTH, tmp_path / "ckpt", weights=False)
    r = invoke("validate", EVAL, "-b", "entry.evaluate.model = @model.llada()", "-b", f"model.llada.path = '{ckpt}'")
    assert r.exit_code == 0, r.output


def test_the_length_check_agrees_with_the_model_layer(checkpoints):
    """The job's loader gives the prompt ids preflight counted, and refuses prompt + gen_length above its maximum
    (the same bound) before any forward."""
    from igpo_kit.config.preflight import longest_prompt
    from igpo_kit.data.prompts import llada_reasoning
    from igpo_kit.errors import ConfigError
    from igpo_kit.models.hf import llada, load_tokenizer

    folder, longest, n = checkpoints["llada"]
    model = llada(path=str(folder), device="cpu", dtype="float32")
    example, counted = longest_prompt(load_tokenizer(str(folder), False, "model.llada"), llada_reasoning(), sample())
    assert (example.id, counted) == (longest, n)
    assert max(len(model.chat_prompt(llada_reasoning().messages(ex))) for ex in sample()) == n
    model.max_positions = n + GEN_LENGTH
    model.check_length(n + GEN_LENGTH)
    with pytest.raises(ConfigError, match="longer than"):
        model.check_length(n + GEN_LENGTH + 1)


def test_tiny_model_prompt_counted_in_its_own_tokens(tmp_path):
    from igpo_kit.data.prompts import llada_reasoning
    from igpo_kit.models.tiny import tiny

    prompt, model = llada_reasoning(), tiny()
    n = max(len(model.chat_prompt(prompt.messages(ex))) for ex in sample())
    r = invoke("run", EVAL, "--runs-dir", tmp_path / "runs", "-b", f"model.tiny.max_positions = {n + GEN_LENGTH - 1}")
    assert r.exit_code == 2 and f"is {n} tokens" in error_lines(r)[0] and not (tmp_path / "runs").exists()
    assert invoke("validate", EVAL, "-b", f"model.tiny.max_positions = {n + GEN_LENGTH}").exit_code == 0


def test_a_hub_id_or_a_config_without_a_maximum_is_skipped(checkpoints, tmp_path):
    """Nothing is downloaded: a hub id that is not a local folder skips the check (the job loads it later)."""
    r = invoke("validate", EVAL, "-b", "entry.evaluate.model = @model.llada()",
               "-b", "model.llada.path = 'GSAI-ML/LLaDA-8B-Instruct'")
    assert r.exit_code == 0, r.output
    folder, _, _ = checkpoints["dream"]
    ckpt = _set_max(folder, "dream", 8, tmp_path / "ckpt")
    raw = json.loads((ckpt / "config.json").read_text())
    del raw["max_position_embeddings"]
    (ckpt / "config.json").write_text(json.dumps(raw))
    r = invoke("validate", EVAL, "-b", "entry.evaluate.model = @model.dream()", "-b", f"model.dream.path = '{ckpt}'")
    assert r.exit_code == 0, r.output


# --- one step's worth of data for the planned processes ----------------------------------------------------------

RL = "tiny/igpo.gin"  # 64 arithmetic problems, prompts_per_step 2
SLURM_40 = ["--executor", "slurm", "--cluster", "local", "--resources", "tiny", "-S", "tasks_per_node=40"]


@pytest.mark.parametrize("command", ["validate", "run --dry-run"])  # (a real `run` would submit if the check failed)
def test_dataset_smaller_than_a_step_of_the_planned_processes(command, tmp_path):
    runs = tmp_path / "runs"
    args = [*command.split(), RL, *SLURM_40] + (["--runs-dir", runs] if command != "validate" else [])
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    (line,) = error_lines(r)
    assert ("has 64 example(s), fewer than one step's worth: prompts_per_step (2) x processes (40) = 80 "
            "(processes: --executor slurm, profile local/tiny: 1 node(s) x 40 task(s))") in line, line
    assert not runs.exists()


def test_subprocess_profile_and_launcher_world_size(tmp_path):
    r = invoke("validate", RL, "--executor", "subprocess", "-S", "tasks_per_node=33")
    assert r.exit_code == 2 and "x processes (33) = 66" in error_lines(r)[0], r.output
    assert invoke("validate", RL, "--executor", "subprocess", "-S", "tasks_per_node=32").exit_code == 0
    # under torchrun / accelerate launch every rank runs `igpo-kit run` with the launcher's WORLD_SIZE
    r = invoke("run", RL, "--runs-dir", tmp_path / "runs", env={"WORLD_SIZE": "33"})
    assert r.exit_code == 2 and "x processes (33) = 66 (processes: $WORLD_SIZE = 33" in error_lines(r)[0], r.output
    assert not (tmp_path / "runs").exists()


def _byte_level_bpe(texts: list[str]):
    """A byte-level BPE tokenizer (GPT-2/Qwen2 style: several characters per token) trained here on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from igpo_kit.models.tiny import DREAM_CHAT_TEMPLATE, DREAM_SPECIALS

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=DREAM_SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.chat_template = DREAM_CHAT_TEMPLATE
    return tok


@pytest.mark.parametrize("kind", ["characters", "byte-level BPE"])
def test_longest_prompt_is_the_longest_of_all(kind):
    """Ranking by the question's own tokens (from the longest in bytes down) then rendering the top ones finds the
    same example and length as rendering every prompt."""
    from igpo_kit.config.preflight import longest_prompt
    from igpo_kit.data.prompts import d1_eval
    from igpo_kit.data.synthetic import arithmetic
    from igpo_kit.models.base import chat_prompt_ids
    from igpo_kit.models.tiny import build_dream_tokenizer

    examples = list(arithmetic(n=300, difficulty=3)) + sample()
    tok = build_dream_tokenizer() if kind == "characters" else _byte_level_bpe([ex.question for ex in examples])
    prompt = d1_eval()
    every = [len(chat_prompt_ids(tok, prompt.messages(ex), prompt.prefill)) for ex in examples]
    example, n = longest_prompt(tok, prompt, examples, chunk=16)  # small chunks: the early stop is exercised
    assert n == max(every) and example is examples[every.index(n)]
