"""RL components (paper Sec. 3, Alg. 1): trigger, replacement, advantages, log-probs, entropy filter, losses.

Light: importing this package imports nothing heavy; import the submodules you need
(:mod:`igpo_kit.rl.trigger`, :mod:`~igpo_kit.rl.replacement`, :mod:`~igpo_kit.rl.advantages`,
:mod:`~igpo_kit.rl.logprobs`, :mod:`~igpo_kit.rl.entropy`, :mod:`~igpo_kit.rl.losses`).
"""
