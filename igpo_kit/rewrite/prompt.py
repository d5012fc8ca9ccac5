"""The trace-revision prompt of paper App. I and the per-row random target length.

The paper's prompt asks the rewriter for "a random length between 100 and 1000 words"; igpo-kit draws that
length itself (uniform integer in ``[min_words, max_words]``, a pure function of ``(seed, example id)``, so
re-runs and resumed runs ask for the same length) and states it in the prompt. ``paper_wording=True`` keeps the
paper's sentence verbatim and leaves the choice to the rewriter.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["REWRITE_TEMPLATE", "PAPER_LENGTH_SENTENCE", "TARGET_LENGTH_SENTENCE", "target_words", "rewrite_prompt"]

PAPER_LENGTH_SENTENCE = (
    "Please shorten or rewrite the rewritten solution to a random length between {min_words} and {max_words} words "
    "while keeping sufficient details of the reasoning steps."
)
TARGET_LENGTH_SENTENCE = (
    "Please shorten or rewrite the rewritten solution to a length of about {target_words} words "
    "while keeping sufficient details of the reasoning steps."
)
# Paper App. I (line breaks as in the paper's box).
REWRITE_TEMPLATE = (
    "Please rewrite the original solution to make it more concise and easier to understand without changing the "
    "details. Please put the explanation in the solution between <reasoning> and </reasoning> and put the final "
    "numerical answer between <answer> and </answer> in boxed format. {length_sentence} Please do not return "
    "anything other than the rewritten solution.\n"
    "Example:\n"
    "<reasoning>\nxxx\n</reasoning>\n\n<answer>\n\\boxed{{14}}\n</answer>\n"
    "Original solution: {generations}.\n"
    "Your response:"
)


def target_words(seed: int, example_id: str, min_words: int = 100, max_words: int = 1000) -> int:
    """The target length (words) of one row: uniform in ``[min_words, max_words]``, seeded by ``(seed, id)``."""
    if not 0 < min_words <= max_words:
        raise ValueError(f"need 0 < min_words <= max_words, got {min_words}, {max_words}")
    digest = hashlib.sha256(f"{seed}\x00{example_id}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).randint(min_words, max_words)


def rewrite_prompt(
    original: str,
    target: int | None = None,
    min_words: int = 100,
    max_words: int = 1000,
) -> str:
    """The App. I prompt for one original solution; ``target=None`` uses the paper's "random length" sentence."""
    if target is None:
        sentence = PAPER_LENGTH_SENTENCE.format(min_words=min_words, max_words=max_words)
    else:
        sentence = TARGET_LENGTH_SENTENCE.format(target_words=target)
    return REWRITE_TEMPLATE.format(length_sentence=sentence, generations=original.strip())
