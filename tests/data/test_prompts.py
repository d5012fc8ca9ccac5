import pytest

from igpo_kit.data import Example, prompts


def test_llada_reasoning_has_a_real_backslash():
    p = prompts.llada_reasoning()
    assert "\\boxed{<Your answer>}" in p.system_prompt
    assert "\x08" not in p.system_prompt
    assert p.system_prompt.startswith("\nRespond in the following format:\n<reasoning>\n")
    msgs = p.messages("What is 2+3?")
    assert msgs == [{"role": "user", "content": p.system_prompt + "\n\n" + "What is 2+3?"}]
    assert p.prefill == ""


def test_llada_reasoning_official_bytes():
    p = prompts.llada_reasoning(official_backspace=True)
    assert "\x08oxed{<Your answer>}" in p.system_prompt and "\\boxed" not in p.system_prompt
    assert p.system_prompt == (
        "\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n\x08oxed{<Your answer>}\n</answer>\n"
    )


def test_d1_eval_prompt():
    p = prompts.d1_eval()
    assert p.prefill == "<reasoning>"
    assert p.system_prompt.startswith("You are a math expert.")
    assert "Wrap the final answer in a \\boxed{}." in p.system_prompt
    content = p.messages(Example(id="x/0", question="Q?", answer="1"))[0]["content"]
    assert content.endswith("</answer>\n\nQ?")


def test_plain_and_system_role():
    assert prompts.plain().messages("Q?") == [{"role": "user", "content": "Q?"}]
    p = prompts.Prompt(system_prompt="Be brief.", as_user_message=False)
    assert p.messages("Q?") == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    with pytest.raises(TypeError):
        prompts.plain().messages(3)


def test_render_with_a_chat_template():
    class Tok:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert tokenize is False and add_generation_prompt is True
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    assert prompts.d1_eval().render(Tok(), "Q?").endswith("Q?<assistant><reasoning>")
