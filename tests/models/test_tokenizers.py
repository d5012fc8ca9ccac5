"""The stand-in tokenizers carry the real special-token ids and render the real chat templates."""

from __future__ import annotations

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


def test_llada_standin_tokenizer(llada_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(llada_lm_dir))
    ids = {t: tok.convert_tokens_to_ids(t) for t in
           ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
    assert ids == {"<|startoftext|>": 126080, "<|endoftext|>": 126081, "<|mdm_mask|>": 126336,
                   "<|start_header_id|>": 126346, "<|end_header_id|>": 126347, "<|eot_id|>": 126348}
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (126080, 126081, 126081)
    text = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == ("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    encoded = tok(text, add_special_tokens=False)["input_ids"]
    assert encoded[:2] == [126080, 126346] and encoded[-3:-1] == [126347, tok.convert_tokens_to_ids("\n")]
    assert tok.decode(encoded) == text


def test_dream_standin_tokenizer(dream_lm_dir):
    from transformers import Qwen2Tokenizer

    tok = Qwen2Tokenizer.from_pretrained(str(dream_lm_dir))  # what model.dream uses without trust_remote_code
    assert (tok.mask_token_id, tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == (151666, 151643, 151643, 151665)
    assert (tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")) == (151644, 151645)
    text = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?"
                    "<|im_end|>\n<|im_start|>assistant\n")
    encoded = tok(text, add_special_tokens=False)["input_ids"]
    assert encoded[0] == 151644 and tok.decode(encoded) == text


def test_dream_remote_tokenizer_agrees(dream_lm_dir):
    from transformers import AutoTokenizer, Qwen2Tokenizer

    remote = AutoTokenizer.from_pretrained(str(dream_lm_dir), trust_remote_code=True)  # the real DreamTokenizer
    native = Qwen2Tokenizer.from_pretrained(str(dream_lm_dir))
    text = native.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert type(remote).__name__ == "DreamTokenizer" and remote.mask_token_id == 151666
    assert remote(text, add_special_tokens=False)["input_ids"] == native(text, add_special_tokens=False)["input_ids"]
