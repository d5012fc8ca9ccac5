"""SFT sequence building: chat prompt + tagged answer + EOS padding, length filter and statistics."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.data.examples import Example
from igpo_kit.data.prompts import llada_reasoning, plain
from igpo_kit.errors import ConfigError
from igpo_kit.sft.data import LengthStats, assistant_text, build_sft_data


def _ex(i, trace="Tom has 3 apples. He buys 4 more, so 3+4=7.", answer="7", question="How many?"):
    return Example(id=f"t/{i}", question=question, answer=answer, trace=trace)


def test_assistant_text_formats():
    assert assistant_text(_ex(0, trace="3+4=7.")) == "<reasoning>3+4=7.</reasoning>\n<answer>\\boxed{7}</answer>"
    tagged = "<reasoning>\n3+4=7.\n</reasoning>\n<answer>\n\\boxed{7}\n</answer>"
    assert assistant_text(_ex(0, trace=tagged)) == tagged
    only_reasoning = "<reasoning>3+4=7.</reasoning>"
    assert assistant_text(_ex(0, trace=only_reasoning)) == only_reasoning + "\n<answer>\\boxed{7}</answer>"
    assert assistant_text(_ex(0, trace="x", answer="\\boxed{7}")).endswith("<answer>\\boxed{7}</answer>")


def test_sequences(tiny_lm):
    prompt = llada_reasoning()
    exs = [_ex(0), _ex(1, trace="3+4=7."), _ex(2, trace=None)]
    data = build_sft_data(tiny_lm, exs, prompt, max_length=400)
    assert len(data) == 2 and data.ids == ["t/0", "t/1"]
    assert data.dropped == {"too_long": 0, "no_trace": 1}
    for i, ex in enumerate(exs[:2]):
        p = tiny_lm.chat_prompt(prompt.messages(ex))
        P = int(data.prompt_lengths[i])
        assert P == len(p) and data.input_ids[i, :P].tolist() == p
        A = int(data.answer_lengths[i])
        answer = tiny_lm.tokenizer.decode(data.input_ids[i, P : P + A].tolist())
        assert answer == assistant_text(ex)
        assert (data.input_ids[i, P + A :] == tiny_lm.eos_id).all() and P + A < 400
        assert not data.answer_mask[i, :P].any() and data.answer_mask[i, P:].all()
    assert data.input_ids.dtype == torch.long and data.answer_mask.dtype == torch.bool


def test_length_filter_and_stats(tiny_lm):
    prompt = plain()
    exs = [_ex(i, trace="x" * (10 * i)) for i in range(1, 11)]
    full = build_sft_data(tiny_lm, exs, prompt, max_length=1000)
    lens = [int(full.prompt_lengths[i] + full.answer_lengths[i]) + 1 for i in range(10)]
    budget = sorted(lens)[6]
    data = build_sft_data(tiny_lm, exs, prompt, max_length=budget)
    assert len(data) == 7 and data.dropped["too_long"] == 3
    s = data.stats["sequence"]
    assert s.count == 10 and s.dropped == 3 and s.kept == 7 and s.max == max(lens)
    assert s.mean == pytest.approx(sum(lens) / 10)
    # exactly at the budget: prompt + answer + one EOS fits
    assert max(int(data.prompt_lengths[i] + data.answer_lengths[i]) + 1 for i in range(7)) == budget
    summary = data.summary()
    assert summary["rows"] == 7 and summary["sequence_length"]["p90"] >= summary["sequence_length"]["p50"]


def test_length_stats_quantiles():
    s = LengthStats.of([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert s.p50 == 5.5 and s.p90 == pytest.approx(9.1) and s.max == 10 and s.mean == 5.5
    assert LengthStats.of([]).count == 0


def test_prefill(tiny_lm):
    prompt = plain(prefill="<reasoning>")
    data = build_sft_data(tiny_lm, [_ex(0, trace="3+4=7.")], prompt, max_length=300)
    P, A = int(data.prompt_lengths[0]), int(data.answer_lengths[0])
    text = tiny_lm.tokenizer.decode(data.input_ids[0, P - len("<reasoning>") : P + A].tolist())
    assert text == "<reasoning>3+4=7.</reasoning>\n<answer>\\boxed{7}</answer>"
    with pytest.raises(ConfigError, match="prefill"):
        build_sft_data(tiny_lm, [_ex(0)], plain(prefill="<think>"), max_length=300)


def test_end_of_turn(tiny_lm):
    data = build_sft_data(tiny_lm, [_ex(0, trace="1+1=2.", answer="2")], plain(), max_length=200, end_of_turn=True)
    P, A = int(data.prompt_lengths[0]), int(data.answer_lengths[0])
    assert int(data.input_ids[0, P + A]) == tiny_lm.eot_id
    assert int(data.input_ids[0, P + A + 1]) == tiny_lm.eos_id
