"""A distributed PyTorch (DDP) job for the pool: trains a tiny MLP on synthetic data, all-reduces
its gradients, checkpoints, stops cleanly when preempted and resumes where it stopped.

Run it as the command of a job with several workers (``examples/jobs/ddp.yaml``). The pool
gives every worker the rendezvous ``torch.distributed`` reads (``MASTER_ADDR``, ``MASTER_PORT``,
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ...; docs/live.md "Distributed jobs: rendezvous"),
the checkpoint directory (``CPOOL_CHECKPOINT_DIR``) and, after a preemption, the newest
checkpoint (``CPOOL_RESUME_FROM``). Backend: NCCL where CUDA cards are visible, HCCL where
Ascend cards are (``torch_npu``), gloo on CPU. Each rank sees only its own devices, so its
device is number 0 of them (not ``LOCAL_RANK``).

Deterministic: a fixed seed, the data and its order a function of the step only, so a run
that was preempted and resumed ends at the same loss as one that ran through (on CPU/gloo).

Knobs (environment): ``DDP_STEPS`` (default 60), ``DDP_CKPT_EVERY`` (10), ``DDP_STEP_SLEEP``
(seconds per step, 0; to make it slow enough to preempt by hand), ``DDP_SEED`` (0).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

SAMPLES, FEATURES, HIDDEN, BATCH = 512, 16, 32, 32


def device_and_backend() -> tuple[torch.device, str]:
    try:
        import torch_npu  # noqa: F401  (Ascend: registers the "npu" device and "hccl")

        if torch.npu.is_available():  # type: ignore[attr-defined]
            return torch.device("npu:0"), "hccl"
    except ImportError:
        pass
    if torch.cuda.is_available():
        return torch.device("cuda:0"), "nccl"
    return torch.device("cpu"), "gloo"


def synthetic_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, FEATURES, generator=g)
    w = torch.randn(FEATURES, 1, generator=g)
    y = torch.sin(x @ w) + 0.1 * torch.randn(SAMPLES, 1, generator=g)
    return x, y


def batch_of(step: int, rank: int, world: int, seed: int) -> torch.Tensor:
    """Indices of this rank's share of the global batch of ``step`` (a function of the step)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randperm(SAMPLES, generator=g)[: BATCH * world]
    return idx[rank::world]


def save(model: nn.Module, opt: torch.optim.Optimizer, step: int, loss: float) -> None:
    """Rank 0 writes ``ckpt-STEP.pt`` atomically (a partial ``.tmp`` is never resumed from)."""
    d = Path(os.environ["CPOOL_CHECKPOINT_DIR"])
    tmp = d / f"ckpt-{step:06d}.pt.tmp"
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "loss": loss}
    torch.save(state, tmp)
    os.replace(tmp, d / f"ckpt-{step:06d}.pt")


def main() -> None:
    steps = int(os.environ.get("DDP_STEPS", "60"))
    every = int(os.environ.get("DDP_CKPT_EVERY", "10"))
    pause = float(os.environ.get("DDP_STEP_SLEEP", "0"))
    seed = int(os.environ.get("DDP_SEED", "0"))
    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))

    device, backend = device_and_backend()
    dist.init_process_group(backend)  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start, loss_v = 0, float("nan")
    resume = os.environ.get("CPOOL_RESUME_FROM")
    if resume:
        state = torch.load(resume, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, loss_v = int(state["step"]), float(state["loss"])
    ddp = DDP(model, device_ids=[0] if device.type != "cpu" else None)
    x, y = synthetic_data(seed)
    print(f"rank {rank}/{world} backend {backend} starts at step {start}", flush=True)

    step = start
    while step < steps:
        idx = batch_of(step, rank, world, seed)
        opt.zero_grad()
        loss = nn.functional.mse_loss(ddp(x[idx].to(device)), y[idx].to(device))
        loss.backward()  # DDP all-reduces (averages) the gradients here
        opt.step()
        step += 1
        # the global loss, and whether any rank was asked to stop: every rank agrees
        both = torch.tensor([loss.item(), float(stop["asked"])], device=device)
        dist.all_reduce(both)
        loss_v = both[0].item() / world
        preempted = both[1].item() > 0
        if rank == 0 and (step % every == 0 or preempted):
            save(model, opt, step, loss_v)
        dist.barrier()
        if preempted:
            print(f"rank {rank} preempted after step {step}", flush=True)
            break
        if pause:
            time.sleep(pause)
    else:
        if rank == 0:
            print(f"final step {step} loss {loss_v!r}", flush=True)
    # DDP's reducer holds gloo work: drop it before the process group goes, and leave together
    del ddp
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # Leave without the interpreter's and C++ runtime's teardown: gloo's transport threads
    # may still be joinable when static destructors run, which aborts a process whose work
    # is done ("terminate called without an active exception", seen on a loaded machine
    # after rank 0 printed its final loss; pytorch/pytorch#179291 describes the teardown).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
