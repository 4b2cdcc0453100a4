"""Crash safety of training: stop and save on Ctrl-C, SIGTERM or submitit's preemption signal (agreed on by every
rank), the final step in ``last.ckpt``, atomic checkpoint writes, and the checks before a run starts or resumes."""
