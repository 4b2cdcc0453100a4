"""Sweeps and their launchers: a sweep directory as a list of training runs (``run_dir=<sweep>``), segmentation at
the end of training (done once per dataset where the method ignores the network), each job's outcome and the
sweep's report, the CPUs a job of a local sweep may use, and the explanation of a SLURM submission that sbatch
refused.

Importing this package imports nothing heavy: the entry points import its modules before torch is loaded.
"""
