"""The training loop: rendered stacks -> DfDNet -> masked per-pixel (SILog, log-L1, AbsRel) + gradient loss,
AdamW + cosine.

Outputs in ``out_dir``: ``model.safetensors`` (weights + model config, loadable with
:func:`dfdnet_core.model.load_checkpoint`), ``state.pt`` (everything needed to resume: weights,
optimiser, scheduler, step, RNG states, elapsed time; plain tensors and dicts, read back with
``torch.load(weights_only=True)``), ``log.csv`` / ``log.json`` and ``curves.png``.

Canonical convention (the same as inference, :mod:`dfdnet_core.model.canonical`): each sample's
kappa = W / max(fx, fy) of its crop; the network sees focus distances * kappa and is trained on
depth * kappa, so ``infer_stack`` turns its output back into metres by dividing by kappa.

Distributed: started by ``torchrun``, every process renders its own stacks (seeded by rank) and
DistributedDataParallel averages the gradients (NCCL on CUDA, gloo on CPU); rank 0 logs and saves.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dfdnet_core.errors import CheckpointError, ConfigError
from dfdnet_core.model.canonical import IMAGENET_MEAN, IMAGENET_STD
from dfdnet_core.model.checkpoint import check_state_dict, save_checkpoint
from dfdnet_core.model.dfdnet import DfDNet
from dfdnet_core.model.prior import network_prior
from dfdnet_core.model.sizes import config_for_size
from dfdnet_core.training.config import TrainConfig
from dfdnet_core.training.losses import depth_loss
from dfdnet_core.training.schedule import make_optimizer
from dfdnet_core.training.stream import (
    Batch,
    SamplePool,
    SampleStream,
    draw_n_slices,
    make_batch,
    metric_depth_m,
    recipe_from_config,
    training_sources,
    validation_source,
)
from dfdnet_core.training_samples import TrainingSample, make_training_sample

STATE_FILE = "state.pt"
MODEL_FILE = "model.safetensors"
LOG_FIELDS = ("step", "elapsed_s", "learning_rate", "loss", "silog", "gradient", "n_slices",
              "val_abs_rel", "val_delta1")


def build_model(config: TrainConfig) -> DfDNet:
    """A freshly initialised DfDNet of the config's size (and network short side, if overridden)."""
    model_config = config_for_size(config.model_size)
    if config.network_short_side_px:
        model_config = dataclasses.replace(model_config, input_short_side_px=config.network_short_side_px)
    if config.depth_prior:
        model_config = dataclasses.replace(model_config, depth_prior=config.depth_prior)
    if config.refiner_channels:
        model_config = dataclasses.replace(model_config, refiner_channels=config.refiner_channels)
    return DfDNet(model_config)


def freeze_all_but(model: nn.Module, prefixes: tuple[str, ...]) -> int:
    """Freeze every parameter whose name starts with none of ``prefixes``; return the trainable count.

    Empty ``prefixes`` leaves everything trainable.

    Raises:
        ConfigError: no parameter matches the prefixes.
    """
    if not prefixes:
        return sum(p.numel() for p in model.parameters())
    trainable = 0
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(prefixes))
        trainable += param.numel() if param.requires_grad else 0
    if not trainable:
        raise ConfigError(f"train_only {list(prefixes)!r} matches no parameter of the model")
    return trainable


def batch_prior(model: nn.Module, batch: Batch) -> tuple[torch.Tensor | None, ...]:
    """(prior (B, 2, H, W), sharpness (B, N, H, W), defocus scale (B,)) of the batch for a prior model, else Nones.

    Computed from the 8-bit quantised images the network sees (see :func:`normalise_stack`).
    """
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if core.config.depth_prior == "none":
        return None, None, None
    images = torch.round(batch.stack.clamp(0, 1) * 255.0).to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()
    focus_m = (batch.focus_canonical / batch.kappa[:, None]).double().numpy()
    priors, sharpness = [], []
    for img, fm, k in zip(images, focus_m, batch.kappa.tolist(), strict=True):
        img = np.ascontiguousarray(img)
        prior, sharp = network_prior(img, fm, float(k))
        priors.append(prior)
        sharpness.append(sharp)
    return torch.from_numpy(np.stack(priors)), torch.from_numpy(np.stack(sharpness)), batch.defocus_scale


def normalise_stack(stack: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> quantised to 8 bits (as the cameras deliver) and ImageNet-normalised."""
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=stack.dtype, device=stack.device).view(3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=stack.dtype, device=stack.device).view(3, 1, 1)
    return (torch.round(stack.clamp(0, 1) * 255.0) / 255.0 - mean) / std


def _device(config: TrainConfig, local_rank: int) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but torch.cuda.is_available() is False")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


@dataclasses.dataclass
class _Run:
    """Mutable state of one run (what a checkpoint restores)."""

    step: int = 0
    draws: int = 0
    elapsed_s: float = 0.0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


def forward_loss(model: nn.Module, batch: Batch, config: TrainConfig, device: torch.device) -> Any:
    """Model prediction and :class:`~dfdnet_core.training.losses.LossTerms` of one batch."""
    x = normalise_stack(batch.stack.to(device))
    fd = batch.focus_canonical.to(device)
    extra = [t.to(device) if t is not None else None for t in batch_prior(model, batch)]
    use_amp = config.mixed_precision and device.type == "cuda"
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
        pred = model(x, fd, *extra)
    terms = depth_loss(
        pred, batch.depth_canonical.to(device), batch.mask.to(device), config.silog_lambda,
        config.gradient_weight, config.gradient_scales, config.silog_weight, config.log_l1_weight,
        config.abs_rel_weight,
    )
    return pred, terms


def validate(
    model: DfDNet, samples: list[TrainingSample], config: TrainConfig, device: torch.device
) -> dict[str, float]:
    """AbsRel and delta<1.25 in metres over the valid pixels of the held-out samples."""
    if not samples:
        return {}
    gen = torch.Generator().manual_seed(0)
    abs_rel, delta1, count = 0.0, 0.0, 0
    model.eval()
    with torch.no_grad():
        for s in samples:
            batch = make_batch([s], int(s.stack.shape[0]), gen, config.min_depth_m, config.max_depth_m, flip=False)
            x = normalise_stack(batch.stack.to(device))
            extra = [t.to(device) if t is not None else None for t in batch_prior(model, batch)]
            pred = metric_depth_m(model(x, batch.focus_canonical.to(device), *extra).float().cpu(), batch.kappa)
            gt = metric_depth_m(batch.depth_canonical, batch.kappa)
            m = batch.mask
            p, g = pred[m].clamp_min(1e-3), gt[m]
            abs_rel += float(((p - g).abs() / g).sum())
            delta1 += float((torch.maximum(p / g, g / p) < 1.25).sum())
            count += int(m.sum())
    model.train()
    return {"val_abs_rel": abs_rel / max(count, 1), "val_delta1": delta1 / max(count, 1)}


def _save_state(path: Path, model: DfDNet, optimizer: torch.optim.Optimizer, scheduler: Any,
                run: _Run, generator: torch.Generator) -> None:
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": run.step,
        "draws": run.draws,
        "elapsed_s": run.elapsed_s,
        "history": run.history,
        "rng_batch": generator.get_state(),
        "rng_torch": torch.get_rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_state(path: Path, model: DfDNet, optimizer: torch.optim.Optimizer, scheduler: Any,
                generator: torch.Generator) -> _Run:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling or zip error: a broken or foreign file
        raise CheckpointError(f"cannot resume from {str(path)!r}: {type(exc).__name__}: {exc}") from None
    required = ("model", "optimizer", "scheduler", "step", "draws", "elapsed_s", "history", "rng_batch", "rng_torch")
    if not isinstance(state, dict) or any(k not in state for k in required):
        raise CheckpointError(f"cannot resume from {str(path)!r}: not a dfdnet training state (keys {required})")
    check_state_dict(model, state["model"], repr(str(path)))
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["rng_batch"])
    torch.set_rng_state(state["rng_torch"])
    return _Run(int(state["step"]), int(state["draws"]), float(state["elapsed_s"]), list(state["history"]))


def _write_logs(out: Path, config: TrainConfig, run: _Run, summary: dict[str, Any] | None = None) -> None:
    with (out / "log.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in run.history:
            writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
    payload = {"config": _jsonable(dataclasses.asdict(config)), "rows": run.history, "summary": summary or {}}
    (out / "log.json").write_text(json.dumps(payload, indent=1, allow_nan=True))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss (left axis, log scale) and validation AbsRel (right axis) against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [r["step"] for r in history]
    losses = np.asarray([r["loss"] for r in history], dtype=np.float64)
    ax.plot(steps, losses, color="tab:blue", lw=0.6, alpha=0.4, label="loss (logged steps)")
    window = min(10, len(losses))
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1 :], smooth, color="tab:blue", lw=1.8, label=f"loss, mean of {window} rows")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (per-pixel terms + gradient)")
    ax.set_yscale("log")
    val = [(r["step"], r["val_abs_rel"]) for r in history if "val_abs_rel" in r]
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", color="tab:red", ms=3, label="val AbsRel")
        ax2.set_ylabel("validation AbsRel", color="tab:red")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("DfDNet training")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def ranks_in_sync(model: nn.Module) -> bool:
    """True when every process holds the same weights (sum and sum of squares agree to 1e-9 relative)."""
    flat = torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()]).double()
    stats = torch.stack([flat.sum(), (flat * flat).sum()])
    if dist.get_backend() == "nccl":
        stats = stats.cuda()
    high, low = stats.clone(), stats.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return bool(torch.all((high - low).abs() <= 1e-9 * high.abs().clamp_min(1.0)))


def _endless(loader: DataLoader[TrainingSample]) -> Iterator[TrainingSample]:
    while True:
        yield from loader


def train(config: TrainConfig, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train DfDNet with ``config``; resume from ``out_dir/state.pt`` when it exists and ``resume``.

    Returns:
        Summary (rank 0; other ranks get the same keys): steps, elapsed seconds, last loss and
        validation metrics, and the files written.

    Raises:
        ConfigError: an impossible device or data setting.
        CheckpointError: an unreadable or mismatching resume state or init checkpoint.
        DataError: a missing DFD-indoor folder.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(config, local_rank)
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed + rank)
    out = Path(config.out_dir)
    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)

    model = build_model(config)
    init_note = ""
    if config.init_checkpoint:
        from dfdnet_core.training.pretrained import init_from_pretrained

        init_note = init_from_pretrained(model, config.init_checkpoint).summary()
        if is_main:
            print(f"init from {config.init_checkpoint}: {init_note}", flush=True)
    trainable = freeze_all_but(model, tuple(config.train_only))
    if config.train_only and is_main:
        print(f"training only {list(config.train_only)}: {trainable} parameters", flush=True)
    model.to(device).train()
    optimizer, scheduler = make_optimizer(
        model, config.learning_rate, config.weight_decay, config.warmup_steps, config.max_steps,
        config.min_learning_rate_ratio,
    )
    generator = torch.Generator().manual_seed(config.seed * 1000 + rank)
    run = _Run()
    state_path = out / STATE_FILE
    if resume and state_path.is_file():
        run = _load_state(state_path, model, optimizer, scheduler, generator)
        if is_main:
            print(f"resumed from {state_path} at step {run.step}", flush=True)
    net: nn.Module = model
    if distributed:
        # find_unused_parameters: mask_token (DINOv2 layout) never enters the forward pass
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None, find_unused_parameters=True
        )

    recipe = recipe_from_config(config)
    stream = SampleStream(training_sources(config), recipe, config.seed, rank, start=run.draws)
    loader = DataLoader(
        stream, batch_size=None, num_workers=config.num_workers, worker_init_fn=_worker_init,
        persistent_workers=config.num_workers > 0,
    )
    samples = _endless(loader)
    val_samples: list[TrainingSample] = []
    if is_main and config.validation_scenes and config.validate_every_steps:
        val_recipe = dataclasses.replace(recipe_from_config(config, n_slices=5), zoom_range=(1.0, 1.0),
                                         flip_probability=0.0, colour_jitter=0.0)
        vgen = torch.Generator().manual_seed(12345)
        val_samples = [make_training_sample(s, val_recipe, vgen) for s in validation_source(config)]

    pool = SamplePool(config.pool_size)
    while len(pool) < min(config.pool_size, 2 * config.batch_size):
        pool.add(next(samples))
        run.draws += 1
    bar = tqdm(total=config.max_steps, initial=run.step, disable=not (progress and is_main), desc="train")
    started = time.monotonic() - run.elapsed_s
    last: dict[str, float] = {}
    stop_reason = "max_steps"
    while run.step < config.max_steps:
        for _ in range(config.pool_refresh_per_step):
            pool.add(next(samples))
            run.draws += 1
        n = draw_n_slices(config, generator)
        batch = make_batch(pool.draw(config.batch_size, generator), n, generator, config.min_depth_m,
                           config.max_depth_m)
        _, terms = forward_loss(net, batch, config, device)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if config.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        run.step += 1
        run.elapsed_s = time.monotonic() - started
        bar.update(1)
        loss = float(terms.total.detach())
        if not math.isfinite(loss):
            raise ConfigError(f"training diverged at step {run.step}: loss {loss!r} (lower learning_rate?)")
        last = {"step": run.step, "elapsed_s": round(run.elapsed_s, 2), "learning_rate": lr, "loss": loss,
                "silog": float(terms.silog), "gradient": float(terms.gradient), "n_slices": n}
        bar.set_postfix(loss=f"{loss:.3f}", n=n)
        if is_main and config.validate_every_steps and run.step % config.validate_every_steps == 0:
            last.update(validate(model, val_samples, config, device))
        timed_out = config.max_time_s > 0 and run.elapsed_s >= config.max_time_s
        done = run.step >= config.max_steps or timed_out
        if is_main and (run.step % config.log_every_steps == 0 or "val_abs_rel" in last or done):
            run.history.append(last)
            _write_logs(out, config, run)
        if is_main and (run.step % config.checkpoint_every_steps == 0 or done):
            _save_state(state_path, model, optimizer, scheduler, run, generator)
            save_checkpoint(model, out / MODEL_FILE)
            plot_curves(run.history, out / "curves.png")
        if timed_out:
            stop_reason = "max_time_s"
            break
    bar.close()
    in_sync = ranks_in_sync(model) if distributed else True
    summary: dict[str, Any] = {
        "steps": run.step, "elapsed_s": round(run.elapsed_s, 1), "stop_reason": stop_reason,
        "stacks_rendered": run.draws, "last": last, "init": init_note, "world_size": world,
        "ranks_in_sync": in_sync,
        "files": [str(out / MODEL_FILE), str(out / STATE_FILE), str(out / "log.csv"), str(out / "log.json"),
                  str(out / "curves.png")],
    }
    if is_main:
        if val_samples and "val_abs_rel" not in last:
            last.update(validate(model, val_samples, config, device))
            run.history.append(last)
        _save_state(state_path, model, optimizer, scheduler, run, generator)
        save_checkpoint(model, out / MODEL_FILE)
        _write_logs(out, config, run, summary)
        plot_curves(run.history, out / "curves.png")
    if distributed:
        dist.barrier()
    return summary


__all__ = ["build_model", "normalise_stack", "plot_curves", "train", "validate"]
