"""SFT sequences for Length-Aligned SFT (spec sec. 9): prompt + assistant answer + EOS padding, length-filtered.

One sequence = ``model.chat_prompt(prompt.messages(example), prompt.prefill)`` (the exact prompt ids RL and
evaluation condition on: chat template, user turn, assistant header, prefill) followed by the assistant answer

    "<reasoning>{trace}</reasoning>\\n<answer>\\boxed{answer}</answer>"

(a trace that already contains the tags is used as is; see :func:`assistant_text`), optionally ``<|eot_id|>``, then
EOS up to the sequence budget ``max_length``. The EOS padding is part of the targets (LLaDA learns to stop by
predicting EOS). When the prompt has a prefill (e.g. ``"<reasoning>"``), the answer must start with it and the
prefill is not repeated. Examples whose prompt + answer + one EOS exceed the budget are dropped (never truncated);
the length statistics before filtering are reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    from igpo_kit.data.examples import Example
    from igpo_kit.models.base import DiffusionLM

__all__ = ["LengthStats", "SFTData", "assistant_text", "build_sft_data"]


@dataclass(frozen=True)
class LengthStats:
    """Token-length statistics of a set of sequences (before filtering) and the filtering outcome."""

    count: int
    mean: float
    p50: float
    p90: float
    max: int
    dropped: int = 0
    kept: int = 0

    @classmethod
    def of(cls, lengths: Sequence[int], dropped: int = 0) -> "LengthStats":
        n = len(lengths)
        if n == 0:
            return cls(count=0, mean=0.0, p50=0.0, p90=0.0, max=0, dropped=dropped, kept=0)
        s = sorted(lengths)
        return cls(
            count=n,
            mean=sum(s) / n,
            p50=_quantile(s, 0.5),
            p90=_quantile(s, 0.9),
            max=s[-1],
            dropped=dropped,
            kept=n - dropped,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quantile(sorted_values: Sequence[int], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of an already sorted sequence."""
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


@dataclass
class SFTData:
    """Tokenised SFT set.

    Attributes:
        input_ids: ``[N, T]`` long, ``T = max_length``.
        prompt_lengths: ``[N]`` long, prompt tokens per row (never masked).
        answer_mask: ``[N, T]`` bool, target positions (answer + EOT + EOS padding).
        answer_lengths: ``[N]`` long, answer tokens per row excluding the padding (and EOT).
        ids: example ids of the kept rows.
        stats: ``{"sequence": ..., "answer": ..., "prompt": ...}`` length statistics before filtering
            (``dropped`` / ``kept`` refer to the budget filter).
        dropped: ``{"too_long": n, "no_trace": n}``.
    """

    input_ids: torch.Tensor
    prompt_lengths: torch.Tensor
    answer_mask: torch.Tensor
    answer_lengths: torch.Tensor
    ids: list[str]
    stats: dict[str, LengthStats]
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def summary(self) -> dict[str, Any]:
        """JSON-friendly statistics (for logs and run metadata)."""
        return {
            "rows": len(self),
            "max_length": int(self.input_ids.shape[1]) if self.input_ids.dim() == 2 else 0,
            "dropped": dict(self.dropped),
            **{f"{k}_length": v.as_dict() for k, v in self.stats.items()},
        }


def _boxed(answer: str) -> str:
    a = answer.strip()
    return a if a.startswith("\\boxed{") and a.endswith("}") else f"\\boxed{{{a}}}"


def assistant_text(example: "Example") -> str:
    """The assistant turn the model is trained on.

    * trace with ``<answer>`` ... ``</answer>`` (e.g. a rewritten trace): used as is;
    * trace with ``<reasoning>`` ... ``</reasoning>`` only: ``trace + "\\n<answer>\\boxed{answer}</answer>"``;
    * otherwise: ``"<reasoning>{trace}</reasoning>\\n<answer>\\boxed{answer}</answer>"``.
    """
    trace = example.trace
    if trace is None:
        raise ValueError(f"example {example.id!r} has no trace to train on")
    if "<answer>" in trace and "</answer>" in trace:
        return trace
    if "<reasoning>" in trace and "</reasoning>" in trace:
        return f"{trace.rstrip()}\n<answer>{_boxed(example.answer)}</answer>"
    return f"<reasoning>{trace}</reasoning>\n<answer>{_boxed(example.answer)}</answer>"


def build_sft_data(
    model: "DiffusionLM",
    examples: Sequence["Example"],
    prompt: Any,
    max_length: int,
    end_of_turn: bool = False,
) -> SFTData:
    """Tokenise ``examples`` into fixed-length SFT rows (prompt + answer + EOS padding), dropping over-budget ones.

    Args:
        model: supplies the tokenizer, the chat template (``model.chat_prompt``) and ``eos_id`` / ``eot_id``.
        examples: examples with a ``trace``; those without one are dropped (``dropped["no_trace"]``).
        prompt: a prompt component (``prompt.messages(example) -> list[dict]``, ``prompt.prefill: str``).
        max_length: the sequence budget ``T`` in tokens (prompt + answer + at least one EOS).
        end_of_turn: append ``model.eot_id`` after the answer (LLaDA-Instruct's chat format) before the EOS padding.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    tok = model.tokenizer
    prefill = getattr(prompt, "prefill", "") or ""
    eot = [model.eot_id] if end_of_turn and model.eot_id is not None else []

    rows: list[tuple[str, list[int], list[int]]] = []
    no_trace = 0
    texts: list[str] = []
    prompts: list[list[int]] = []
    ids: list[str] = []
    for ex in examples:
        if ex.trace is None or not str(ex.trace).strip():
            no_trace += 1
            continue
        text = assistant_text(ex)
        if prefill:
            if not text.startswith(prefill):
                from igpo_kit.errors import ConfigError

                raise ConfigError(
                    f"the prompt's prefill {prefill!r} does not start the SFT target of example {ex.id!r} "
                    f"({text[:40]!r}...); use a prompt without prefill or matching traces"
                )
            text = text[len(prefill):]
        texts.append(text)
        prompts.append(list(model.chat_prompt(prompt.messages(ex), prefill)))
        ids.append(ex.id)
    answers = tok(texts, add_special_tokens=False)["input_ids"] if texts else []
    for ex_id, p_ids, a_ids in zip(ids, prompts, answers):
        rows.append((ex_id, p_ids, list(a_ids) + eot))

    seq_lens = [len(p) + len(a) + 1 for _, p, a in rows]  # +1: at least one EOS
    kept = [r for r, n in zip(rows, seq_lens) if n <= max_length]
    too_long = len(rows) - len(kept)
    stats = {
        "sequence": LengthStats.of(seq_lens, dropped=too_long),
        "answer": LengthStats.of([len(a) for _, _, a in rows], dropped=too_long),
        "prompt": LengthStats.of([len(p) for _, p, _ in rows], dropped=too_long),
    }

    n = len(kept)
    input_ids = torch.full((n, max_length), model.eos_id, dtype=torch.long)
    answer_mask = torch.zeros((n, max_length), dtype=torch.bool)
    prompt_lengths = torch.zeros(n, dtype=torch.long)
    answer_lengths = torch.zeros(n, dtype=torch.long)
    for i, (_, p, a) in enumerate(kept):
        seq = p + a
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        answer_mask[i, len(p):] = True
        prompt_lengths[i] = len(p)
        answer_lengths[i] = len(a) - len(eot)
    return SFTData(
        input_ids=input_ids,
        prompt_lengths=prompt_lengths,
        answer_mask=answer_mask,
        answer_lengths=answer_lengths,
        ids=[r[0] for r in kept],
        stats=stats,
        dropped={"too_long": too_long, "no_trace": no_trace},
    )
