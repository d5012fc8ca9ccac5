"""Evaluation: pass@k / avg@k metrics and the benchmark evaluation job."""
