"""model.llada / model.dream: native by default (no trust_remote_code), 'remote' opt-in; the adapter's view is the
same either way; bad input is one ConfigError line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from igpo_kit.components import model as models
from igpo_kit.errors import ConfigError

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(scope="module")
def lms(llada_lm_dir, dream_lm_dir):
    out = {}
    for family, folder in [("llada", llada_lm_dir), ("dream", dream_lm_dir)]:
        load = getattr(models, family)
        out[family, "native"] = load(path=str(folder), device="cpu")
        out[family, "remote"] = load(path=str(folder), implementation="remote", trust_remote_code=True, device="cpu")
    return out


def test_native_is_the_default_and_needs_no_remote_code(lms):
    from igpo_kit.models.dream import DreamModel
    from igpo_kit.models.llada import LLaDAModelLM

    assert type(lms["llada", "native"].network) is LLaDAModelLM and type(lms["dream", "native"].network) is DreamModel
    assert type(lms["llada", "remote"].network).__module__.startswith("transformers_modules")
    llada, dream = lms["llada", "native"], lms["dream", "native"]
    assert (llada.mask_id, llada.eos_id, llada.eot_id, llada.max_positions) == (126336, 126081, 126348, 256)
    assert (dream.mask_id, dream.eos_id, dream.eot_id, dream.logits_shift) == (151666, 151643, 151645, 1)
    assert dream.tokenizer.mask_token_id == dream.mask_id


@torch.no_grad()
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_adapter_logits_agree_between_implementations(lms, family):
    native, remote = lms[family, "native"], lms[family, "remote"]
    ids = torch.tensor([native.chat_prompt(MESSAGES)])
    x = torch.cat([ids, torch.full((1, 8), native.mask_id)], dim=1)
    block = slice(ids.shape[1], ids.shape[1] + 8)
    torch.testing.assert_close(native.logits(x, positions=block), remote.logits(x, positions=block), rtol=0, atol=1e-5)
    if family == "dream":  # the remote Dream takes padding as its own sampler builds it (4-D mask, position ids)
        padded = torch.cat([torch.full((1, 3), native.pad_id), x], dim=1)
        mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones_like(x)], dim=1)
        late = slice(block.start + 3, block.stop + 3)
        torch.testing.assert_close(native.logits(padded, mask, positions=late), remote.logits(padded, mask, positions=late),
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(native.logits(padded, mask, positions=late), native.logits(x, positions=block),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_sampler_and_inpainting_run(lms, family):
    from igpo_kit.components import sampler

    lm = lms[family, "native"]
    ids = torch.tensor([lm.chat_prompt(MESSAGES)] * 2)
    hints = torch.full((2, 16), lm.mask_id)
    hints[0, 4:7] = torch.tensor(lm.tokenizer("abc", add_special_tokens=False)["input_ids"][:3])
    out = sampler.low_confidence(gen_length=16, block_length=8, steps=8, temperature=1.0)(
        lm, ids, hint_ids=hints, generator=torch.Generator().manual_seed(0))
    assert out.sequences.shape == (2, ids.shape[1] + 16) and not (out.completions == lm.mask_id).any()
    assert torch.equal(out.completions[0, 4:7], hints[0, 4:7])


def test_prompt_longer_than_max_positions_fails_before_any_forward(lms):
    from igpo_kit.sampling.generate import generate

    lm = lms["llada", "native"]
    calls = []
    hook = lm.network.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ConfigError, match="longer than .* maximum of 256 positions"):
            generate(lm, torch.ones(1, 250, dtype=torch.long), gen_length=16, block_length=8, steps=8)
        with pytest.raises(ConfigError, match="maximum of 256"):
            lm.logits(torch.ones(1, 300, dtype=torch.long))
    finally:
        hook.remove()
    assert calls == []


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert len(exc.value.lines) == 1
    return exc.value.lines[0]


def test_a_checkpoint_given_to_the_other_loader(dream_lm_dir, llada_lm_dir, tmp_path):
    with pytest.raises(ConfigError) as exc:
        models.llada(path=str(dream_lm_dir), device="cpu")
    assert "Dream checkpoint" in _one_line(exc) and "load it with model.dream()" in _one_line(exc)
    with pytest.raises(ConfigError, match=r"load it with model.llada\(\), not model.dream\(\)"):
        models.dream(path=str(llada_lm_dir), device="cpu")
    with pytest.raises(ConfigError, match="no checkpoint folder"):
        models.dream(path=str(tmp_path / "nothing"), device="cpu")


def test_unknown_model_type_names_the_known_ones_and_remote(tmp_path, llada_lm_dir):
    folder = tmp_path / "moe"
    shutil.copytree(llada_lm_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "lladamoe"}))
    with pytest.raises(ConfigError) as exc:
        models.llada(path=str(folder), device="cpu")
    line = _one_line(exc)
    assert "'lladamoe'" in line and "llada, Dream" in line and "implementation = 'remote'" in line
    with pytest.raises(ConfigError, match="trust_remote_code = True"):
        models.llada(path=str(folder), implementation="remote", device="cpu")
    with pytest.raises(ConfigError, match="'native' or 'remote'"):
        models.llada(path=str(folder), implementation="vllm", device="cpu")


def test_weights_that_do_not_match_the_config(tmp_path, llada_lm_dir):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "bad"
    shutil.copytree(llada_lm_dir, folder)
    state = load_file(str(folder / "model.safetensors"))
    state["model.transformer.blocks.1.q_proj.weight_renamed"] = state.pop("model.transformer.blocks.1.q_proj.weight")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError) as exc:
        models.llada(path=str(folder), device="cpu")
    line = _one_line(exc)
    assert "do not match" in line and "missing model.transformer.blocks.1.q_proj.weight" in line
    assert "unexpected model.transformer.blocks.1.q_proj.weight_renamed" in line
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "n_layers": 3}))
    shutil.copyfile(llada_lm_dir / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ConfigError, match="missing model.transformer.blocks.2"):
        models.llada(path=str(folder), device="cpu")
    (folder / "config.json").write_text(json.dumps({**cfg, "d_model": 32}))
    with pytest.raises(ConfigError, match="do not match"):
        models.llada(path=str(folder), device="cpu")


def test_settings_the_native_class_lacks_point_to_remote(tmp_path, llada_lm_dir):
    folder = tmp_path / "alibi"
    shutil.copytree(llada_lm_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "block_type": "sequential"}))
    with pytest.raises(ConfigError, match="block_type='sequential'.*implementation = 'remote'"):
        models.llada(path=str(folder), device="cpu")


def test_describe_model_dream():
    from typer.testing import CliRunner

    from igpo_kit.cli.main import app

    r = CliRunner().invoke(app, ["describe", "model", "dream"])
    assert r.exit_code == 0, r.output
    assert "implementation" in r.output and "151666" in r.output and "shift" in r.output


def test_cli_exit_2_one_line_for_an_unknown_model_type(tmp_path):
    from typer.testing import CliRunner

    from igpo_kit.cli.main import app

    folder = tmp_path / "moe"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "lladamoe"}))
    r = CliRunner().invoke(app, ["run", "eval/llada_paper.gin", "--runs-dir", str(tmp_path / "runs"),
                                 "-b", f"MODEL_PATH = '{folder}'"])
    assert r.exit_code == 2, r.output
    out = r.output.replace("\n", " ")
    assert "'lladamoe'" in out and "model.llada.implementation = 'remote'" in out and "Traceback" not in out
