"""The SFT job's root: Length-Aligned SFT (paper Sec. 3.2 / 4.1, Table 2; spec sec. 9) of a dLLM on traced examples.

One process, or one per GPU: every task of a multi-task job (Slurm tasks through submitit, ``torchrun``) runs this
with ``RANK``/``WORLD_SIZE``/``MASTER_*`` set and trains its slice of each global batch (data parallel through
accelerate: DDP, or DeepSpeed ZeRO-2 with ``deepspeed_config``; see :mod:`igpo_kit.sft.trainer`). Rank 0 writes
everything below; resuming needs the same number of processes.

Outputs under the run directory:

* ``metrics.jsonl``: one record per optimizer step (``step``, ``loss``, ``lr``, ``grad_norm``, ``nll``, ...; see
  :mod:`igpo_kit.sft.trainer`). On a resumed start it is cut back to the records of the checkpoint it resumes
  from, so every step appears exactly once.
* ``length_stats.json``: token lengths of the SFT sequences / answers / prompts before the budget filter and the
  drop counts (``too_long``, ``no_trace``).
* ``checkpoints/``: resumable training state; ``model/``: the final model (a ``save_pretrained`` directory), the
  initial model of an RL or evaluation recipe (``model.tiny.path`` / ``model.llada.path`` = ``<run dir>/model``).
"""

from __future__ import annotations

import time
from typing import Any

LENGTH_STATS_FILE = "length_stats.json"


def sft(
    model: Any = None,
    dataset: Any = None,
    prompt: Any = None,
    max_length: int = 1024,
    batch_size: int = 4,
    grad_accum: int = 1,
    epochs: float = 1.0,
    max_steps: int | None = None,
    lr: float = 5e-6,
    weight_decay: float = 0.1,
    warmup_steps: int = 200,
    min_lr: float = 1e-6,
    decay_fraction: float = 0.1,
    decay_type: str = "linear",
    max_grad_norm: float = 1.0,
    betas: tuple[float, float] | list[float] = (0.9, 0.999),
    normalization: str = "answer_tokens",
    eps: float = 1e-3,
    end_of_turn: bool = False,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 2,
    time_limit_s: float | None = None,
    seed: int = 0,
    mixed_precision: str = "auto",
    deepspeed_config: str | None = None,
    gradient_checkpointing: bool = False,
    progress: bool = True,
    report_to: str | list[str] | tuple[str, ...] = (),
    run: Any = None,
) -> dict:
    """Fine-tune ``model`` on the traces of ``dataset`` with the NELBO of Eq. 1 and a warmup-stable-decay schedule.

    Args:
        model: the dLLM (``@model.llada()``, ``@model.tiny()``...); fully fine-tuned.
        dataset: a list of Examples with traces (``@dataset.jsonl()`` on rewritten traces, ``@dataset.arithmetic()``).
        prompt: the prompt template the sequences are built with (default ``prompt.llada_reasoning()``, the RL
            prompt, so the SFT model starts RL from the same prompt format).
        max_length: sequence budget T in tokens (prompt + answer + EOS padding); longer examples are dropped.
        batch_size, grad_accum: rows per micro-batch and micro-batches per optimizer step, per process: a step
            trains on ``batch_size * grad_accum * world_size`` rows (Table 2: 4 x 8 per GPU on 64 GPUs = 2048).
        epochs, max_steps: schedule length (``max_steps`` overrides ``epochs``; Table 2: 100 epochs).
        lr, min_lr, warmup_steps, decay_fraction, decay_type: the WSD schedule (Table 2: 5e-6, 1e-6, 200, last 10%).
        weight_decay, betas, max_grad_norm: AdamW and clipping.
        normalization, eps: NELBO normalisation and ``t' = (1 - eps) t + eps`` (see :mod:`igpo_kit.sft.nelbo`).
        end_of_turn: append ``<|eot_id|>`` after the answer (LLaDA-Instruct's chat turn, as d1's SFT data).
        checkpoint_every, keep_checkpoints: resumable checkpoints every this many steps (0: only at the end).
        time_limit_s: stop after this many seconds of training, checkpoint, and end the run as failed ("stopped at
            step k"): running the same config again resumes (for allocations shorter than the run).
        seed: data order and masking noise.
        mixed_precision: ``"auto"`` (bf16 autocast on GPU, none on CPU), ``"no"`` or ``"bf16"``.
        deepspeed_config: a DeepSpeed JSON (``'recipes/deepspeed/zero2.json'``, ZeRO-2, the paper's setup; its
            ``"auto"`` values are filled from these settings: micro batch ``batch_size``, clipping ``max_grad_norm``,
            bf16 from ``mixed_precision``). None: DDP / one process. ZeRO-2 over several processes needs GPUs.
        gradient_checkpointing: recompute each layer's activations in the backward pass (less memory, ~1/3 more
            compute; on in the paper recipe); a model that cannot is a config error.
        progress: print a progress line to stderr (the first step, then at most every 10 s, and the last).
        report_to: experiment trackers that also get every step's metrics: ``['tensorboard']``, ``'wandb'``,
            ``'mlflow'`` (:mod:`igpo_kit.tracking`; ``metrics.jsonl`` stays the record).
        run: the run record (passed by the runner).
    Returns:
        ``{"step", "total_steps", "resumed_from", "final_loss", "model_dir", "data"}``.
    """
    from igpo_kit.errors import ConfigError, RunError
    from igpo_kit.sft.trainer import make_sft_accelerator, resolve_mixed_precision, train_sft

    missing = [n for n, v in dict(model=model, dataset=dataset, run=run).items() if v is None]
    if missing:
        raise ConfigError(f"entry.sft needs {', '.join(missing)}")
    if prompt is None:
        from igpo_kit.components import prompt as prompt_k

        prompt = prompt_k.llada_reasoning()
    if len(betas) != 2:
        raise ConfigError(f"entry.sft.betas must be two numbers, got {betas!r}")
    resolve_mixed_precision(mixed_precision)  # a bad value fails before any process group is formed
    accelerator = make_sft_accelerator(deepspeed_config, mixed_precision, batch_size, max_grad_norm)
    main = accelerator.is_main_process
    if main:  # rank 0 alone writes the run directory
        run.truncate_metrics(_resume_step(run.dir))  # records of the checkpoint train_sft restarts from, one per step

    console = _Progress(progress and main)

    def log(record: dict) -> None:
        run.log(record)
        console.step(record)

    from igpo_kit.tracking import tracked

    settings = dict(max_length=max_length, batch_size=batch_size, grad_accum=grad_accum, epochs=epochs,
                    max_steps=max_steps, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, min_lr=min_lr,
                    decay_fraction=decay_fraction, decay_type=decay_type, max_grad_norm=max_grad_norm, seed=seed)
    with tracked(run if main else None, report_to, "sft", config=settings):
        result = train_sft(
            model, list(dataset), prompt, run_dir=run.dir, max_length=max_length, batch_size=batch_size,
            grad_accum=grad_accum, epochs=epochs, max_steps=max_steps, lr=lr, weight_decay=weight_decay,
            warmup_steps=warmup_steps, min_lr=min_lr, decay_fraction=decay_fraction, max_grad_norm=max_grad_norm,
            seed=seed, checkpoint_every=checkpoint_every, log=log, normalization=normalization, eps=eps,
            decay_type=decay_type, betas=(float(betas[0]), float(betas[1])), end_of_turn=end_of_turn,
            keep_checkpoints=keep_checkpoints, time_limit_s=time_limit_s, accelerator=accelerator,
            gradient_checkpointing=gradient_checkpointing, progress=progress,
        )
    console.end(result)
    if main:
        run.write_json(LENGTH_STATS_FILE, result.data)
    if not result.completed:
        raise RunError(f"SFT stopped at step {result.step} of {result.total_steps} (time_limit_s={time_limit_s}); "
                       f"checkpoint saved in {run.dir / 'checkpoints'}: run the same config again to resume")
    records = run.metrics() if main else []
    last = records[-1] if records else {}
    return {
        "step": result.step,
        "total_steps": result.total_steps,
        "resumed_from": result.resumed_from,
        "final_loss": last.get("loss", result.last_loss),
        "model_dir": str(result.model_dir),
        "data": {k: result.data[k] for k in ("rows", "max_length", "dropped")},
    }


def _resume_step(run_dir) -> int:
    """The step of the checkpoint :func:`~igpo_kit.checkpoint.load_latest` resumes from (its ``step_<n>`` directory
    holds a state file), else 0."""
    from igpo_kit.checkpoint import CHECKPOINTS_DIR, STATE_FILE, latest_name

    name = latest_name(run_dir)
    if name is None or not (run_dir / CHECKPOINTS_DIR / name / STATE_FILE).is_file():
        return 0
    return int(name.removeprefix("step_"))


class _Progress:
    """One stderr line for the first step, then at most every ``every_s`` seconds, and for the last step."""

    def __init__(self, enabled: bool, every_s: float = 10.0):
        self.enabled, self.every_s, self.last_print, self.pending = enabled, every_s, None, None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    def _print(self, r: dict) -> None:
        self.console.print(f"sft step {r['step']}  loss {r['loss']:.4f}  nll {r['nll']:.4f}  lr {r['lr']:.3g}  "
                           f"grad_norm {r['grad_norm']:.3g}  epoch {r['epoch']:.2f}  tok/s {r['tokens_per_s']:.0f}",
                           highlight=False)
        self.last_print, self.pending = time.monotonic(), None

    def step(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.last_print is None or time.monotonic() - self.last_print >= self.every_s:
            self._print(record)
        else:
            self.pending = record

    def end(self, result: Any) -> None:
        if not self.enabled:
            return
        if self.pending is not None:
            self._print(self.pending)
        state = "done" if result.completed else "stopped"
        self.console.print(f"sft {state} at step {result.step}/{result.total_steps}; SFT rows {result.data['rows']}, "
                           f"dropped {result.data['dropped']}", highlight=False)
