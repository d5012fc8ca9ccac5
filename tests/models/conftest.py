"""Tiny checkpoints built from the real upstream files in ``../shared/models`` (skipped, with the reason, if absent).

A tiny checkpoint folder = the real ``config.json`` with its sizes shrunk (every other key kept), the real ``.py``
files and tokenizer/generation configs copied beside it, and random weights under the upstream parameter names
(taken from the upstream class itself), so native and remote code load the very same folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SHARED_MODELS = Path(os.environ.get("IGPO_KIT_SHARED", REPO.parent / "shared")) / "models"

LLADA_SIZES = {"d_model": 64, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "mlp_hidden_size": 96,
               "max_sequence_length": 256}
DREAM_SIZES = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
               "intermediate_size": 96, "max_position_embeddings": 256}


def upstream(name: str) -> Path:
    folder = SHARED_MODELS / name
    if not (folder / "config.json").is_file():
        pytest.skip(f"{folder} is absent: the real upstream {name} files live in ../shared/models")
    return folder


def random_state(shapes: dict[str, torch.Size], seed: int) -> dict[str, torch.Tensor]:
    """Random weights: matrices ~ N(0, 0.05^2), vectors (norms, biases) ~ 1 + / 0 + N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in sorted(shapes.items()):
        noise = torch.randn(shape, generator=g)
        if len(shape) == 1:
            out[name] = (1.0 if "norm" in name else 0.0) + 0.1 * noise
        else:
            out[name] = 0.05 * noise
    return out


def make_checkpoint(src: Path, dst: Path, sizes: dict, seed: int = 0, extra: dict | None = None) -> Path:
    """Write a tiny checkpoint of ``src`` (real files) into ``dst``: shrunk config, upstream .py, random weights."""
    from safetensors.torch import save_file

    from igpo_kit.models.remote import remote_config, remote_model_class

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "config.json":
            shutil.copyfile(f, dst / f.name)
    config = json.loads((src / "config.json").read_text())
    config.update(sizes, **(extra or {}))
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    cfg = remote_config(str(dst))
    cls = remote_model_class(str(dst), cfg)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in cls(cfg).state_dict().items()}
    save_file(random_state(shapes, seed), str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


@pytest.fixture(scope="session")
def llada_dir(tmp_path_factory) -> Path:
    """A tiny LLaDA-8B-Instruct-shaped checkpoint with the real upstream code."""
    return make_checkpoint(upstream("llada"), tmp_path_factory.mktemp("llada"), LLADA_SIZES)


@pytest.fixture(scope="session")
def dream_dir(tmp_path_factory) -> Path:
    """A tiny Dream-v0-Instruct-7B-shaped checkpoint with the real upstream code."""
    return make_checkpoint(upstream("dream"), tmp_path_factory.mktemp("dream"), DREAM_SIZES)


# --- stand-in tokenizers: the real tokenizer_config.json (chat template, special tokens at their real ids) over a
# --- character-level vocabulary (the real vocabularies are not available offline) ----------------------------------

def llada_standin_tokenizer(folder: Path) -> None:
    """Write ``tokenizer.json`` into ``folder`` (which holds LLaDA's real ``tokenizer_config.json``): printable
    characters + every added token of the real config at its real id (``<|mdm_mask|>`` 126336 ...)."""
    import string

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    config = json.loads((folder / "tokenizer_config.json").read_text())
    specials = {v["content"]: int(k) for k, v in config["added_tokens_decoder"].items()}
    chars = [c for c in dict.fromkeys(list(string.printable[:95]) + ["\n"])]
    vocab = {c: i for i, c in enumerate(chars)} | {"[UNK]": len(chars)} | specials
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    core.save(str(folder / "tokenizer.json"))


def dream_standin_tokenizer(folder: Path) -> None:
    """Write ``vocab.json`` / ``merges.txt`` into ``folder`` (with Dream's real ``tokenizer_config.json`` and
    ``added_tokens.json``): the 256 byte-level symbols, fillers up to Qwen2's 151643 regular tokens, no merges, so
    the added tokens land on their real ids (``<|endoftext|>`` 151643 ... ``<|mask|>`` 151666)."""
    from tokenizers.pre_tokenizers import ByteLevel

    symbols = ByteLevel.alphabet()
    vocab = {s: i for i, s in enumerate(sorted(symbols))}
    vocab |= {f"<filler_{i}>": i for i in range(len(vocab), min(json.loads(
        (folder / "added_tokens.json").read_text()).values()))}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")


@pytest.fixture(scope="session")
def llada_lm_dir(llada_dir) -> Path:
    """The tiny LLaDA checkpoint with its stand-in tokenizer (what ``model.llada(path=...)`` loads)."""
    llada_standin_tokenizer(llada_dir)
    return llada_dir


@pytest.fixture(scope="session")
def dream_lm_dir(dream_dir) -> Path:
    """The tiny Dream checkpoint with its stand-in tokenizer files."""
    dream_standin_tokenizer(dream_dir)
    return dream_dir
