"""Where a sweep's runs execute: local processes, a Dask cluster, or SLURM through submitit.

Each is opened as a ``concurrent.futures.Executor``, so the sweep submits runs and collects them as
they finish the same way everywhere. Dask and submitit are optional (the ``cluster`` extra) and only
imported when asked for.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASK_SCHEME = "dask://"
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")


@dataclass(frozen=True)
class SlurmOptions:
    """One SLURM job per run: its partition, time limit (minutes), CPUs, GPUs and memory.

    ``cluster`` is submitit's executor: "slurm" on a cluster; "local" (a subprocess per job) and
    "debug" (in this process) run submitit's machinery on one machine, which is how it is tested.
    """

    partition: str | None = None
    time_min: int = 60
    cpus: int = 2
    gpus: int = 0
    mem_gb: float | None = None
    cluster: str = "slurm"

    def __post_init__(self) -> None:
        if self.cluster not in SUBMITIT_CLUSTERS:
            raise ValueError(f"submitit cluster must be one of {SUBMITIT_CLUSTERS}, got {self.cluster!r}")
        if self.time_min < 1 or self.cpus < 1 or self.gpus < 0 or (self.mem_gb is not None and self.mem_gb <= 0):
            raise ValueError(f"SLURM options need time >= 1 min, cpus >= 1, gpus >= 0 and mem > 0, got {self}")


class _SubmititExecutor(Executor):
    """submitit jobs behind the ``concurrent.futures`` interface: ``submit`` queues the job at once;
    a thread per pending job waits for its result (submitit's ``Job.result`` polls the scheduler)."""

    def __init__(self, executor: Any, waiters: int = 16) -> None:
        self._executor = executor
        self._waiters = ThreadPoolExecutor(max_workers=waiters, thread_name_prefix="submitit-wait")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        job = self._executor.submit(fn, *args, **kwargs)
        return self._waiters.submit(job.result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._waiters.shutdown(wait=wait, cancel_futures=cancel_futures)


def check_executor_spec(spec: str) -> str:
    """``spec`` if it names an executor ("local", "slurm" or "dask://HOST:PORT"), else ``ValueError``."""
    if spec in ("local", "slurm"):
        return spec
    if spec.startswith(DASK_SCHEME) and len(spec) > len(DASK_SCHEME):
        return spec
    raise ValueError(f"executor must be 'local', 'slurm' or 'dask://HOST:PORT', got {spec!r}")


@contextmanager
def open_executor(spec: str = "local", jobs: int = 1, folder: str | Path | None = None,
                  slurm: SlurmOptions | None = None) -> Iterator[Executor]:
    """The executor ``spec`` names, shut down (and its Dask client closed) on leaving the block.

    ``jobs`` is the number of local processes (the other executors' capacity is the cluster's);
    ``folder`` is where submitit keeps its job files (required for "slurm").
    """
    check_executor_spec(spec)
    if spec == "local":
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        # forkserver: workers fork from a clean server process, never from a caller holding torch
        # threads, and start faster than with "spawn"
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("forkserver")) as pool:
            yield pool
    elif spec == "slurm":
        if folder is None:
            raise ValueError("the slurm executor needs a folder for submitit's job files")
        import submitit

        options = slurm or SlurmOptions()
        executor = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
        parameters: dict[str, Any] = {"name": "rnnpool_lite-sweep", "timeout_min": options.time_min,
                                      "cpus_per_task": options.cpus, "gpus_per_node": options.gpus}
        if options.mem_gb is not None:
            parameters["mem_gb"] = options.mem_gb
        if options.partition is not None:
            parameters["slurm_partition"] = options.partition
        executor.update_parameters(**parameters)
        with _SubmititExecutor(executor) as pool:
            yield pool
    else:
        from distributed import Client

        rest = spec[len(DASK_SCHEME):]
        address = rest if "://" in rest else f"tcp://{rest}"  # dask://HOST:PORT, or dask://tls://HOST:PORT
        with Client(address) as client:
            # pure=False: a retried run is a new task, not the cached result of the failed one
            yield client.get_executor(pure=False)
