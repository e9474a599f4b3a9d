"""Where and how training runs: device choice, AMP, seeds, determinism, torchrun DDP."""

from __future__ import annotations

import gc
import os
import random
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def choose_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The training device: "auto" picks cuda, then mps, then cpu; a forced device that is
    absent is an error."""
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    match requested:
        case "auto":
            if cuda_ok:
                return torch.device("cuda", local_rank % torch.cuda.device_count())
            return torch.device("mps" if mps_ok else "cpu")
        case "cpu":
            return torch.device("cpu")
        case "mps":
            if not mps_ok:
                raise RuntimeError(
                    "device='mps' requested but this torch has no usable MPS backend; use --device cpu"
                )
            return torch.device("mps")
        case _ if requested.startswith("cuda"):
            if not cuda_ok:
                raise RuntimeError(
                    f"device={requested!r} requested but torch {torch.__version__} sees no CUDA device "
                    "(CPU build or no driver); use --device cpu or auto"
                )
            if requested == "cuda":
                return torch.device("cuda", local_rank % torch.cuda.device_count())
            return torch.device(requested)
        case _:
            raise ValueError(f"device={requested!r}: expected auto, cpu, mps, cuda or cuda:N")


def amp_dtype(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full precision. AMP is a CUDA-only feature here."""
    if requested == "off" or device.type != "cuda":
        if requested in ("bf16", "fp16") and device.type != "cuda":
            raise RuntimeError(
                f"amp={requested!r} needs a CUDA device, training runs on {device}; use --amp off"
            )
        return None
    if requested == "fp16":
        return torch.float16
    if requested == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16  # "auto" on a GPU without bf16 (pre-Ampere)


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[object]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally make torch kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be reproducible; must be set before CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # "nccl" or "gloo" inside a process group, else None
    # Whether this call started the group, so ``shutdown_distributed`` may end it: a training
    # run started inside another's group (the ranker's fold two-tower) leaves it to that one.
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.backend is not None


def init_distributed(device_request: str) -> DistContext:
    """Join the process group torchrun set up (env:// rendezvous); single process otherwise.

    The backend follows the hardware: nccl when training on CUDA, gloo on CPU. A torchrun
    launch joins a group even with one process, so a one-GPU machine exercises the same
    nccl + DistributedDataParallel path as a multi-GPU one.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or "MASTER_ADDR" not in os.environ:
        if world > 1:
            raise RuntimeError(
                f"WORLD_SIZE={world} but RANK/MASTER_ADDR are not set; start distributed training "
                "with torchrun --nproc-per-node N -m {{ cookiecutter.package_name }} train ..."
            )
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns_group = not dist.is_initialized()
    if owns_group:
        # Import this before the group exists. Its collectives take ``group=group.WORLD`` as a
        # default argument, evaluated at import time, and DistributedDataParallel imports it
        # (through torch._dynamo) when it is constructed. Imported after init_process_group,
        # those ten defaults hold the default group, so destroy_process_group() cannot free
        # it: gloo's worker and TCP threads then live on until the interpreter's own teardown
        # frees the module, and a rank can abort there ("terminate called without an active
        # exception") after training has finished. See shutdown_distributed.
        import torch.distributed.nn  # noqa: F401

        use_nccl = (
            torch.cuda.is_available() and device_request != "cpu" and dist.is_nccl_available()
        )
        if use_nccl:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    backend = str(dist.get_backend())
    return DistContext(rank, world, local_rank, backend, owns_group)


def broadcast_floats(values: list[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Rank 0's values on every rank (so all ranks take the same early-stopping decision)."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` (anything picklable) on every rank; ``obj`` itself outside a group."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)  # nccl: through the device set in init_distributed
    return box[0]


def mean_across(value: float, ctx: DistContext, device: torch.device) -> float:
    """The mean of ``value`` over all ranks (each rank reports its own half-batch losses)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / ctx.world_size


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group so that its threads are gone before the interpreter exits.

    The barrier lets every rank finish its last collective before any rank tears down.
    destroy_process_group() then frees the group, joining gloo's threads here and now, but
    only if nothing else still holds it: the DistributedDataParallel wrapper (its reducer
    does; ``train`` calls this after ``_train`` has returned, so the wrapper is gone) and
    torch.distributed.nn (see init_distributed). A group freed later is freed during the
    interpreter's shutdown, with its threads running while Python is torn down.

    "Gone" needs a garbage collection first: the wrapper can outlive ``_train`` in a reference
    cycle. Seen on Python 3.10 (a default bake): on rank 0, frames of an import that matplotlib
    makes inside ``plot_curves`` sat in a cycle that reached ``_train``'s frame, and so its
    wrapper, which kept the group and gloo's threads alive until the next automatic collection
    (``tests/test_ddp_teardown.py`` failed on every run there).
    """
    if ctx.owns_group and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
