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

import dataclasses
import time
from typing import Any

from igpo_kit.settings import flat_settings
from igpo_kit.sft.settings import SFTSettings

LENGTH_STATS_FILE = "length_stats.json"


@flat_settings(settings=SFTSettings)
def sft(
    model: Any = None,
    dataset: Any = None,
    prompt: Any = None,
    settings: SFTSettings = SFTSettings(),
    progress: bool = True,
    report_to: str | list[str] | tuple[str, ...] = (),
    run: Any = None,
) -> dict:
    """Fine-tune ``model`` on the traces of ``dataset`` with the NELBO of Eq. 1 and a warmup-stable-decay schedule.

    Recipes bind the components and, one keyword each, the fields of ``settings`` (listed below):
    ``entry.sft.lr = 5e-6``.

    Args:
        model: the dLLM (``@model.llada()``, ``@model.tiny()``...); fully fine-tuned.
        dataset: a list of Examples with traces (``@dataset.jsonl()`` on rewritten traces, ``@dataset.arithmetic()``).
        prompt: the prompt template the sequences are built with (default ``prompt.llada_reasoning()``, the RL
            prompt, so the SFT model starts RL from the same prompt format).
        settings: batch, schedule, optimizer, checkpoints, precision, DeepSpeed
            (:class:`~igpo_kit.sft.settings.SFTSettings`).
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
    if len(settings.betas) != 2:
        raise ConfigError(f"entry.sft.betas must be two numbers, got {settings.betas!r}")
    settings = dataclasses.replace(settings, betas=(float(settings.betas[0]), float(settings.betas[1])))
    resolve_mixed_precision(settings.mixed_precision)  # a bad value fails before any process group is formed
    accelerator = make_sft_accelerator(settings.deepspeed_config, settings.mixed_precision, settings.batch_size,
                                       settings.max_grad_norm)
    main = accelerator.is_main_process
    if main:  # rank 0 alone writes the run directory
        run.truncate_metrics(_resume_step(run.dir))  # records of the checkpoint train_sft restarts from, one per step

    console = _Progress(progress and main)

    def log(record: dict) -> None:
        run.log(record)
        console.step(record)

    from igpo_kit.tracking import tracked

    with tracked(run if main else None, report_to, "sft", config=dataclasses.asdict(settings)):
        result = train_sft(model, list(dataset), prompt, run_dir=run.dir, settings=settings, log=log,
                           accelerator=accelerator, progress=progress)
    console.end(result)
    if main:
        run.write_json(LENGTH_STATS_FILE, result.data)
    if not result.completed:
        raise RunError(f"SFT stopped at step {result.step} of {result.total_steps} "
                       f"(time_limit_s={settings.time_limit_s}); checkpoint saved in {run.dir / 'checkpoints'}: "
                       "run the same config again to resume")
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
