"""4D-aware video diffusion: d4d-train (training.train) and d4d-sample (training.sample). See docs/training.md."""
