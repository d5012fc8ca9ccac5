"""Gradient checkpointing: the same loss and gradients as without it, layers really recomputed in the backward
(also in the RL loop's eval mode and under a LoRA wrapper); a network that cannot checkpoint is a config error
naming it. The RL and SFT loops with it on: tests/rl/test_trainer.py, tests/sft/test_trainer.py."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.models.checkpointing import checkpoint_in_eval, enable_gradient_checkpointing
from igpo_kit.rl.logprobs import mean_field


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _loss_grads_and_attention_calls(model, checkpointing: bool, lora: bool = False):
    if lora:
        from igpo_kit.entry.rl import _with_lora

        model = _with_lora(model, 4, 8, 0.0, ["q_proj", "v_proj"], seed=1)
    net = model.network
    if checkpointing:
        enable_gradient_checkpointing(net, model.name)
    net.eval()  # the RL loop's mode
    checkpoint_in_eval(net)
    calls = []
    for name, m in net.named_modules():
        if name.endswith("self_attn"):
            m.register_forward_hook(lambda *a: calls.append(1))
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(8, model.vocab_size, (3, 24), generator=g)
    stats = mean_field()(model, seqs, 8, compute_entropy=False)
    loss = -(stats.logps * torch.linspace(-1, 1, 16)).mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}
    return loss.item(), grads, len(calls)


@pytest.mark.parametrize("lora", [False, True])
def test_same_loss_and_gradients_as_off_and_layers_recomputed(tiny_lm_factory, lora):
    if lora:
        pytest.importorskip("peft")
    off = _loss_grads_and_attention_calls(tiny_lm_factory(), False, lora)
    on = _loss_grads_and_attention_calls(tiny_lm_factory(), True, lora)
    assert on[0] == off[0]
    assert off[1].keys() == on[1].keys() and all(torch.allclose(off[1][k], on[1][k], atol=1e-7) for k in off[1])
    assert off[2] == 2 and on[2] == 4  # 2 layers; with checkpointing each runs again in the backward pass


def test_a_network_that_cannot_checkpoint_is_a_config_error(tiny_lm):
    from igpo_kit.errors import ConfigError
    from igpo_kit.models.base import DiffusionLM

    plain = DiffusionLM(network=torch.nn.Linear(2, 2), tokenizer=None, mask_id=0, eos_id=1, name="my_plain_net")
    with pytest.raises(ConfigError, match=r"my_plain_net \(Linear\) cannot checkpoint its layers"):
        enable_gradient_checkpointing(plain.network, plain.name)
