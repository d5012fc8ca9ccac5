"""Hints for inpainting (paper Sec. 3.1): answer-span detection, chunkers, trace corruptions (App. J).

Light: importing this package imports no torch. Use the submodules :mod:`igpo_kit.hints.answer_span`,
:mod:`igpo_kit.hints.chunking` and :mod:`igpo_kit.hints.corruption`.
"""
