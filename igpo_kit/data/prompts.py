"""Prompt templates (registry kind ``prompt``): how a question becomes chat messages (+ an assistant prefill).

``Prompt.messages(example_or_question)`` gives the chat messages; ``Prompt.prefill`` is text the caller appends
after the chat template's assistant header (d1 evaluation prefills ``"<reasoning>"``); ``Prompt.render(tokenizer,
x)`` does both with any tokenizer that has ``apply_chat_template``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from igpo_kit.data.examples import Example

__all__ = [
    "Prompt",
    "LLADA_REASONING_SYSTEM_PROMPT",
    "OFFICIAL_REASONING_SYSTEM_PROMPT",
    "D1_EVAL_SYSTEM_PROMPT",
    "llada_reasoning",
    "d1_eval",
    "plain",
]

# Spec sec. 7.2, with a literal backslash in \boxed (the released string has a backspace there: "\x08oxed").
LLADA_REASONING_SYSTEM_PROMPT = (
    "\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n\\boxed{<Your answer>}\n</answer>\n"
)
# Byte-for-byte the released SYSTEM_PROMPT (spec sec. 7.2 and sec. 12 item 16): "\b" became a backspace (U+0008).
OFFICIAL_REASONING_SYSTEM_PROMPT = LLADA_REASONING_SYSTEM_PROMPT.replace("\\boxed", "\x08oxed")

# d1's GSM8K evaluation system prompt (spec sec. 7.3); note the space before the first newline.
D1_EVAL_SYSTEM_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}. \n"
    "Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)


def _question(example_or_question: Example | str | Any) -> str:
    if isinstance(example_or_question, str):
        return example_or_question
    question = getattr(example_or_question, "question", None)
    if question is None:
        raise TypeError(f"expected an Example or a question string, got {type(example_or_question).__name__}")
    return str(question)


@dataclass(frozen=True)
class Prompt:
    """A prompt template.

    system_prompt: instructions ("" for none).
    prefill: text the assistant turn starts with (appended after the chat template's generation prompt).
    as_user_message: True = one user turn ``system_prompt + separator + question`` (LLaDA/d1 style, no system
        role); False = a ``system`` message then a ``user`` message with the question.
    """

    system_prompt: str = ""
    prefill: str = ""
    as_user_message: bool = True
    separator: str = "\n\n"

    def user_content(self, example_or_question: Example | str) -> str:
        question = _question(example_or_question)
        if self.as_user_message and self.system_prompt:
            return self.system_prompt + self.separator + question
        return question

    def messages(self, example_or_question: Example | str) -> list[dict[str, str]]:
        """Chat messages for one question: ``[{"role": "user", "content": ...}]`` (plus a system turn if configured)."""
        msgs: list[dict[str, str]] = []
        if not self.as_user_message and self.system_prompt:
            msgs.append({"role": "system", "content": self.system_prompt})
        msgs.append({"role": "user", "content": self.user_content(example_or_question)})
        return msgs

    def render(self, tokenizer: Any, example_or_question: Example | str) -> str:
        """Prompt text: the tokenizer's chat template with the generation prompt, then :attr:`prefill`."""
        text = tokenizer.apply_chat_template(
            self.messages(example_or_question), tokenize=False, add_generation_prompt=True
        )
        return text + self.prefill


def llada_reasoning(official_backspace: bool = False, prefill: str = "") -> Prompt:
    """The IGPO training prompt (spec sec. 7.2): one user turn ``SYSTEM_PROMPT + "\\n\\n" + question``, no prefill.

    official_backspace: reproduce the released string byte-for-byte (a backspace instead of ``\\b`` in ``\\boxed``).
    """
    system = OFFICIAL_REASONING_SYSTEM_PROMPT if official_backspace else LLADA_REASONING_SYSTEM_PROMPT
    return Prompt(system_prompt=system, prefill=prefill, as_user_message=True)


def d1_eval(prefill: str = "<reasoning>") -> Prompt:
    """d1's zero-shot evaluation prompt (spec sec. 7.3): system text + "\\n\\n" + question, ``"<reasoning>"`` prefill."""
    return Prompt(system_prompt=D1_EVAL_SYSTEM_PROMPT, prefill=prefill, as_user_message=True)


def plain(prefill: str = "") -> Prompt:
    """The question alone as the user turn."""
    return Prompt(system_prompt="", prefill=prefill, as_user_message=True)
