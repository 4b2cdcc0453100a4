"""Watching a training run: the health checks (is the model learning?), the last step's metrics, the CSV history
kept across resumes, the figures sent to W&B, and the end-of-training check that every rank agrees."""
