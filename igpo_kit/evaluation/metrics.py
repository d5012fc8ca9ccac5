"""Accuracy metrics over n samples per problem: pass@k (unbiased estimator) and avg@k."""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct out of ``n`` samples: 1 - C(n-c, k) / C(n, k).

    (Chen et al. 2021.) Requires ``k <= n``.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(correct: list[list[bool]], ks: tuple[int, ...] = (1,)) -> dict[str, float]:
    """Metrics over problems, each with a list of per-sample correctness.

    Returns ``avg@n`` (mean accuracy over all samples; pass@1 when n = 1) and ``pass@k`` for each k <= n.
    """
    if not correct:
        return {}
    n = min(len(c) for c in correct)
    out = {f"avg@{n}": sum(sum(c[:n]) / n for c in correct) / len(correct)}
    for k in ks:
        if k <= n:
            out[f"pass@{k}"] = sum(pass_at_k(n, sum(c[:n]), k) for c in correct) / len(correct)
    out["problems"] = len(correct)
    return out
