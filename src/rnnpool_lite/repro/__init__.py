"""Reproduction tooling for the book: the paper's tables and the authors' trace, claims and seed
statistics, chapter results, and resumable sweeps on this machine, a Dask cluster or SLURM."""
