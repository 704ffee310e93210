"""d4d-eval: the paper's Table 1 metrics for generated orbits against held-out ground truth. See docs/evaluation.md."""
