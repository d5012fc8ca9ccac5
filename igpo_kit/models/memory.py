"""Peak GPU memory of one training process, estimated from the architecture and the run's settings (no weights
loaded): what ``igpo-kit run RECIPE --dry-run`` prints for RL and SFT recipes.

Parts (bytes per process; ``P`` parameters, ``P_t`` of them trained, ``W`` processes sharing ZeRO partitions):

* weights: ``P x`` the model dtype's bytes, plus fp32 master weights of the trained ones (``4 P_t``; ``/W`` under
  ZeRO >= 1) when compute is bf16; a frozen reference copy (full fine-tuning with a KL term) adds ``P x`` bytes.
* gradients: ``P_t x`` 4 bytes (``/W`` under ZeRO-2); optimizer: AdamW's two float32 moments, ``8 P_t`` (``/W``
  under ZeRO >= 1).
* activations of one micro-batch in the update (``rows x T`` tokens): ``10 d + 4 d_ff`` values per token and layer
  without gradient checkpointing; with it, each layer keeps only its input (``d``) and one layer's are recomputed
  at a time.
* logits: the update's ``rows x L x V`` (model dtype + float32 copy + log-softmax + its gradient: ``b + 12``
  bytes each); the no-grad pi_old / ref / entropy passes (``b + 12`` per value, one micro-batch at a time) and the
  sampler's (``B x positions x V``, model dtype + float32 for the noise and softmax) come and go before the update.

The peak is the resident state plus the largest transient. An estimate, within tens of percent: the allocator's
fragmentation, CUDA context (~0.5-1 GB), NCCL and DeepSpeed buckets come on top (``overhead_gb``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Architecture", "Workload", "estimate_peak", "LLADA_8B"]

GB = 1e9


@dataclass(frozen=True)
class Architecture:
    """What memory depends on. ``linear_shapes``: ``{module name: [(in, out), ...]}`` of every linear layer by its
    short name (LoRA targets), one entry per occurrence."""

    n_params: int
    n_layers: int
    d_model: int
    d_ff: int
    vocab: int
    linear_shapes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def lora_params(self, rank: int, targets: list[str] | tuple[str, ...]) -> int:
        """Parameters of a rank-``rank`` LoRA adapter on ``targets``: ``r (in + out)`` per targeted linear."""
        return sum(rank * (i + o) for t in targets for i, o in self.linear_shapes.get(t, []))


def _llada_8b() -> Architecture:
    d, ff, v, n = 4096, 12288, 126464, 32
    shapes = {name: [(d, d)] * n for name in ("q_proj", "k_proj", "v_proj", "attn_out")}
    shapes |= {"ff_proj": [(d, ff)] * n, "up_proj": [(d, ff)] * n, "ff_out": [(ff, d)] * n + [(d, v)]}
    params = 2 * v * d + n * (4 * d * d + 3 * d * ff) + (2 * n + 1) * d
    return Architecture(n_params=params, n_layers=n, d_model=d, d_ff=ff, vocab=v, linear_shapes=shapes)


#: LLaDA-8B-Instruct (its config.json: d_model 4096, 32 layers, mlp_hidden_size 12288, vocab 126464, untied head).
LLADA_8B = _llada_8b()


@dataclass(frozen=True)
class Workload:
    """The settings of one training process that memory depends on.

    rows: rows per forward/backward of the update (micro batch). seq_len: T tokens per row (prompt + completion).
    logit_positions: L positions whose logits the update scores (RL: the completion; SFT: T).
    rollout_rows / rollout_positions: rows of a sampler call and the positions it computes logits for (0: no
    sampling, SFT). trained: ``None`` for full fine-tuning, else the number of trained (LoRA) parameters.
    weight_bytes: 2 (bf16) or 4. bf16_compute: bf16 compute with fp32 master weights of the trained parameters.
    zero_stage, world: DeepSpeed ZeRO stage (0: none / DDP) and the processes sharing its partitions.
    reference_copy: a frozen copy of the weights for the KL term. gradient_checkpointing: as the recipe says.
    """

    rows: int
    seq_len: int
    logit_positions: int
    rollout_rows: int = 0
    rollout_positions: int = 0
    trained: int | None = None
    weight_bytes: int = 2
    bf16_compute: bool = True
    zero_stage: int = 0
    world: int = 1
    reference_copy: bool = False
    gradient_checkpointing: bool = False


def estimate_peak(arch: Architecture, w: Workload, overhead_gb: float = 0.0) -> dict[str, float]:
    """The parts listed in the module docstring, in GB (1e9 bytes), and ``peak_gb``."""
    p, b = arch.n_params, w.weight_bytes
    pt = p if w.trained is None else w.trained
    shard1 = w.world if w.zero_stage >= 1 else 1
    shard2 = w.world if w.zero_stage >= 2 else 1
    master = 4 * pt / shard1 if (w.bf16_compute and b < 4) else 0.0
    trained_bytes = 4 if (w.trained is not None or w.bf16_compute or b == 4) else b
    parts = {
        "weights_gb": (p * b + master) / GB,
        "reference_gb": (p * b if w.reference_copy else 0) / GB,
        "gradients_gb": pt * trained_bytes / shard2 / GB,
        "optimizer_gb": 8 * pt / shard1 / GB,
    }
    act_b = 2 if (w.bf16_compute or b == 2) else 4
    tokens = w.rows * w.seq_len
    per_layer = (10 * arch.d_model + 4 * arch.d_ff) * tokens * act_b
    if w.gradient_checkpointing:
        activations = arch.n_layers * arch.d_model * tokens * act_b + per_layer
    else:
        activations = arch.n_layers * per_layer
    parts["activations_gb"] = activations / GB
    parts["update_logits_gb"] = w.rows * w.logit_positions * arch.vocab * (act_b + 12) / GB
    parts["logprob_pass_logits_gb"] = (w.rows * w.logit_positions * arch.vocab * (act_b + 12) / GB
                                       if w.rollout_rows else 0.0)
    parts["rollout_logits_gb"] = w.rollout_rows * w.rollout_positions * arch.vocab * (act_b + 8) / GB
    resident = sum(parts[k] for k in ("weights_gb", "reference_gb", "gradients_gb", "optimizer_gb"))
    transient = max(parts["activations_gb"] + parts["update_logits_gb"], parts["logprob_pass_logits_gb"],
                    parts["rollout_logits_gb"])
    parts["overhead_gb"] = overhead_gb
    parts["peak_gb"] = resident + transient + overhead_gb
    return parts


def describe(arch: Architecture, w: Workload) -> dict:
    """The inputs of an estimate, JSON-able."""
    return {"architecture": {k: v for k, v in asdict(arch).items() if k != "linear_shapes"}, "workload": asdict(w)}
