"""Benchmark (issue 8): forward time of the native LLaDA / Dream classes vs the checkpoint's own remote code, in one
process, interleaved, median of ``--repeats``, float32 on CPU.

    python bench/models.py                      # LLaDA: d_model 512, 4 layers, vocab 126464, T 512, batch 1
    python bench/models.py --family dream       # the same sizes on Dream's architecture (GQA 8 / 2 heads)
    python bench/models.py --block 32 --repeats 7

The checkpoint is built from the real upstream files in ``../shared/models/<family>`` (its ``config.json`` with the
sizes replaced, every other key kept; random weights, seeded), then loaded twice: ``native`` (``model.llada`` /
``model.dream``) and ``remote`` (its ``modeling_*.py`` through :mod:`igpo_kit.models.remote`). Rows:

* ``full``: logits of all T positions (both implementations);
* ``slice``: the logits a sampler step reads, one block of ``--block`` positions: the native class runs its LM
  head on the block only (``logits_to_keep``); the remote code computes all T and the block is sliced out.

Printed: median seconds per forward and the remote / native ratio per row. The load average is printed with the
times: on a shared machine compare the in-process ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
SIZES = {
    "llada": lambda d, layers, heads: {"d_model": d, "n_heads": heads, "n_kv_heads": heads, "n_layers": layers,
                                       "mlp_hidden_size": 3 * d, "max_sequence_length": 4096},
    "dream": lambda d, layers, heads: {"hidden_size": d, "num_attention_heads": heads,
                                       "num_key_value_heads": max(heads // 4, 1), "num_hidden_layers": layers,
                                       "intermediate_size": 3 * d, "max_position_embeddings": 4096},
}


def build_checkpoint(family: str, folder: Path, sizes: dict, seed: int = 0) -> Path:
    """A checkpoint folder of ``family`` from the real upstream files with ``sizes``, random weights (seeded)."""
    from safetensors.torch import save_file

    from igpo_kit.models.remote import remote_config, remote_model_class

    src = Path(os.environ.get("IGPO_KIT_SHARED", SHARED.parent)) / "models" / family  # ../shared/models
    if not (src / "config.json").is_file():
        sys.exit(f"{src} is absent: this benchmark needs the real upstream files of ../shared/models/{family}")
    for f in src.iterdir():
        shutil.copyfile(f, folder / f.name)
    config = json.loads((src / "config.json").read_text()) | sizes
    (folder / "config.json").write_text(json.dumps(config))
    cfg = remote_config(str(folder))
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in remote_model_class(str(folder), cfg)(cfg).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    state = {k: (1.0 if len(s) == 1 and "norm" in k else 0.0) + 0.02 * torch.randn(s, generator=g)
             for k, s in sorted(shapes.items())}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=sorted(SIZES), default="llada")
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--length", type=int, default=512, help="T")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--block", type=int, default=32, help="positions whose logits a sampler step reads")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    from igpo_kit.models.remote import load_remote

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_checkpoint(args.family, Path(tmp), SIZES[args.family](args.d_model, args.layers, args.heads))
        native_cls = __import__(f"igpo_kit.models.{args.family}", fromlist=["x"])
        native = getattr(native_cls, "LLaDAModelLM" if args.family == "llada" else "DreamModel").from_pretrained(
            str(folder), dtype=torch.float32).eval()
        remote = load_remote(str(folder), dtype=torch.float32).eval()
        vocab = native.get_output_embeddings().weight.shape[0]
        x = torch.randint(0, vocab, (args.batch, args.length), generator=torch.Generator().manual_seed(1))
        block = torch.arange(args.length - args.block, args.length)
        cases = {
            ("full", "native"): lambda: native(input_ids=x).logits,
            ("full", "remote"): lambda: remote(input_ids=x).logits,
            ("slice", "native"): lambda: native(input_ids=x, logits_to_keep=block).logits,
            ("slice", "remote"): lambda: remote(input_ids=x).logits[:, block],
        }
        with torch.inference_mode():
            torch.testing.assert_close(cases["full", "native"](), cases["full", "remote"](), rtol=0, atol=1e-4)
            times: dict = {k: [] for k in cases}
            for _ in range(args.repeats):  # interleaved: load changes hit every case alike
                for key, fn in cases.items():
                    times[key] += timed(fn, 1)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.family}: d_model {args.d_model}, {args.layers} layers, {args.heads} heads, vocab {vocab}, "
          f"T {args.length}, batch {args.batch}, block {args.block}, {args.repeats} repeats, float32 CPU, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    print(f"{'row':6} {'native s':>9} {'remote s':>9} {'remote/native':>14}")
    for row in ("full", "slice"):
        print(f"{row:6} {med[row, 'native']:9.3f} {med[row, 'remote']:9.3f} {med[row, 'remote'] / med[row, 'native']:14.2f}")
    print(f"native slice vs remote full: {med['full', 'remote'] / med['slice', 'native']:.2f}x")


if __name__ == "__main__":
    main()
