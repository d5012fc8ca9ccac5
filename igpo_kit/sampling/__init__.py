"""LLaDA semi-autoregressive block decoding with optional inpainting (spec sec. 1-2).

* :mod:`igpo_kit.sampling.generate` -- :func:`generate` (one code path for plain generation and inpainting),
  :class:`Generation`, the registered sampler factories ``low_confidence`` / ``random`` (:class:`LLaDASampler`).
* :mod:`igpo_kit.sampling.schedule` -- block bounds and the per-step transfer schedule.
* :mod:`igpo_kit.sampling.noise` -- Gumbel-max token sampling (``fast`` / ``exact``) and remasking confidences.
* :mod:`igpo_kit.sampling.reference` -- line-by-line transcription of the reference samplers (tests, benchmarks).
"""

from igpo_kit.sampling.generate import Generation, LLaDASampler, StepInfo, generate

__all__ = ["Generation", "LLaDASampler", "StepInfo", "generate"]
