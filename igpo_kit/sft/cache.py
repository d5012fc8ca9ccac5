"""A content-keyed cache of SFT runs: the same model, data, prompt and settings are trained once, then reused.

The key hashes everything that determines the trained weights: the initial network (class, config and every
initial weight), the tokenizer (vocabulary, chat template) and the DiffusionLM special ids, the SFT examples (id,
question, trace, answer of each, in order), the prompt template and the SFT settings. The cached run is
``<root>/sft-<key>/``, a :func:`igpo_kit.sft.trainer.train_sft` run directory, so a killed SFT resumes from its latest
checkpoint there and a complete one (``model/`` written) is only loaded. ``key.json`` there says what the key was
computed from (for humans; the key itself is the hash) and ``metrics.jsonl`` holds one line per SFT step.

Several processes may ask for the same SFT at once (sweep cells starting together, each from the quickstart's SFT):
the first takes the run directory's lock (:class:`~igpo_kit.runs.RunLock`) and trains; the others block on it and
then load the finished weights, so the SFT is trained once and nobody fails.

Hashing reads every weight once: cheap for the tiny models this is meant for (the CPU quickstart), not for 8B ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    from igpo_kit.data.examples import Example
    from igpo_kit.models.base import DiffusionLM
    from igpo_kit.sft.trainer import SFTResult

__all__ = ["CachedSFT", "NOT_IN_KEY", "cached_sft", "sft_key"]

KEY_FILE = "key.json"
# train_sft arguments that do not change the trained weights (a resumed run is bit-identical): not in the key
NOT_IN_KEY = ("checkpoint_every", "keep_checkpoints", "stop_at_step", "time_limit_s")


@dataclass
class CachedSFT:
    """The outcome of :func:`cached_sft`.

    Attributes:
        key: the content hash (16 hex digits).
        run_dir: ``<root>/sft-<key>``, the SFT run directory.
        model_dir: ``run_dir/model``, the trained weights (a ``save_pretrained`` directory).
        reused: True when the weights were loaded from a complete cached run (no SFT step ran).
        steps_run: optimizer steps this call ran (0 when reused; fewer than planned when it resumed).
        seconds: wall time of this call (loading or training).
        result: the :class:`~igpo_kit.sft.trainer.SFTResult` when this call trained, else None.
    """

    key: str
    run_dir: Path
    model_dir: Path
    reused: bool
    steps_run: int
    seconds: float
    result: "SFTResult | None" = None


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"type": type(obj).__name__, **fields}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def _model_fingerprint(model: "DiffusionLM") -> dict[str, Any]:
    """Class, config, tokenizer and special ids of ``model``, plus a hash of its initial weights."""
    net = model.network
    config = getattr(net, "config", None)
    weights = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        weights.update(name.encode())
        weights.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        weights.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    tok = model.tokenizer
    vocab = sorted(tok.get_vocab().items()) if hasattr(tok, "get_vocab") else repr(tok)
    return {
        "network": type(net).__name__,
        "config": config.to_dict() if hasattr(config, "to_dict") else repr(config),
        "weights_sha256": weights.hexdigest(),
        "tokenizer_sha256": hashlib.sha256(json.dumps([vocab, getattr(tok, "chat_template", None)],
                                                      default=repr).encode()).hexdigest(),
        "ids": {k: getattr(model, k, None) for k in ("mask_id", "eos_id", "eot_id", "pad_id")},
    }


def _examples_sha256(examples: Sequence["Example"]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.question, ex.trace, ex.answer]).encode())
        h.update(b"\n")
    return h.hexdigest()


def _key_material(model: "DiffusionLM", examples: Sequence["Example"], prompt: Any,
                  settings: dict[str, Any]) -> dict[str, Any]:
    material = {
        "model": _model_fingerprint(model),
        "examples": {"count": len(examples), "sha256": _examples_sha256(examples)},
        "prompt": _jsonable(prompt),
        "settings": _jsonable({k: v for k, v in settings.items() if k not in NOT_IN_KEY}),
    }
    # JSON canonical form: key order and tuples-vs-lists do not change the key
    return json.loads(json.dumps(material, sort_keys=True, default=repr))


def sft_key(model: "DiffusionLM", examples: Sequence["Example"], prompt: Any, settings: dict[str, Any]) -> str:
    """The cache key (16 hex digits) of SFT-training ``model`` (in its current state) on ``examples``.

    ``settings`` are fields of :class:`~igpo_kit.sft.settings.SFTSettings` (``max_length``, ``batch_size``,
    ``max_steps``, ``lr``, ...) and ``stop_at_step``; those in :data:`NOT_IN_KEY`
    (checkpointing, planned interruptions) are ignored.
    """
    material = _key_material(model, examples, prompt, settings)
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def cached_sft(model: "DiffusionLM", examples: Sequence["Example"], prompt: Any, root: str | Path,
               log: Callable[[dict], None] | None = None, notify: Callable[[str], None] | None = None,
               **settings: Any) -> CachedSFT:
    """SFT ``model`` in place on ``examples``, or load the weights of the same SFT run finished earlier.

    Args:
        model: the model to train (its network is changed in place either way).
        examples, prompt: the SFT set and prompt template (see :func:`~igpo_kit.sft.trainer.train_sft`).
        root: the cache directory; the run lives at ``root/sft-<key>``.
        log: called with each SFT step record of this call.
        notify: called with a one-line message when this call waits for another process building the same SFT
            and when it starts (or resumes) training.
        **settings: :class:`~igpo_kit.sft.settings.SFTSettings` fields and ``stop_at_step`` (part of the key).
    Returns:
        :class:`CachedSFT`.
    Raises:
        RunError: the SFT stopped before its last step (``stop_at_step`` / ``time_limit_s``); call again to resume.
    """
    from igpo_kit.runs import RunLock
    from igpo_kit.sft.trainer import FINAL_MODEL_DIR, SUMMARY_FILE, load_weights

    if "run_dir" in settings or "log" in settings:
        raise TypeError("cached_sft chooses run_dir itself; pass log as a keyword, not in settings")
    t0 = time.perf_counter()
    material = _key_material(model, examples, prompt, settings)
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
    run_dir = Path(root) / f"sft-{key}"
    final = run_dir / FINAL_MODEL_DIR
    def reuse() -> CachedSFT | None:
        """The finished run's weights loaded into ``model``, or None when it is not finished."""
        if not (final / SUMMARY_FILE).is_file():
            return None
        load_weights(model.network, final)
        return CachedSFT(key, run_dir, final, reused=True, steps_run=0, seconds=time.perf_counter() - t0)

    done = reuse()
    if done is not None:
        return done

    def waiting(holder: dict) -> None:
        if notify is not None:
            notify(f"SFT {key}: waiting for pid {holder.get('pid', '?')} on {holder.get('host', '?')}, which is "
                   f"building the same SFT in {run_dir}")

    with RunLock(run_dir, wait=True, on_wait=waiting):
        # reuse(): built meanwhile by the process we waited for
        return reuse() or _train(model, examples, prompt, run_dir, key, material, settings, log, notify, t0)


def _train(model, examples, prompt, run_dir: Path, key: str, material: dict, settings: dict, log, notify,
           t0: float) -> CachedSFT:
    """:func:`cached_sft`'s training branch (the caller holds ``run_dir``'s lock)."""
    from igpo_kit.atomic import write_atomic
    from igpo_kit.checkpoint import load_latest
    from igpo_kit.runs import Run
    from igpo_kit.sft.settings import SFTSettings
    from igpo_kit.sft.trainer import train_sft

    write_atomic(run_dir / KEY_FILE, json.dumps({"key": key, **material}, indent=1, sort_keys=True) + "\n")
    record = Run(run_dir)
    latest = load_latest(run_dir)
    done = int(latest[1]["step"]) if latest is not None else 0
    record.truncate_metrics(done)  # one line per step, kept on resume
    if notify is not None:
        notify(f"SFT {key}: {'resuming at step ' + str(done) if done else 'training'} "
               f"({settings.get('max_steps') or 'all'} steps; cached in {run_dir} for later runs)")

    def log_step(step: dict) -> None:
        record.log(step)
        if log is not None:
            log(step)

    options = dict(settings)
    stop_at_step = options.pop("stop_at_step", None)
    result = train_sft(model, examples, prompt, run_dir=run_dir, log=log_step, settings=SFTSettings(**options),
                       stop_at_step=stop_at_step)
    if not result.completed or result.model_dir is None:
        from igpo_kit.errors import RunError

        raise RunError(f"SFT in {run_dir} stopped at step {result.step} of {result.total_steps}; run again to resume")
    return CachedSFT(key, run_dir, result.model_dir, reused=False, steps_run=len(result.history),
                     seconds=time.perf_counter() - t0, result=result)
