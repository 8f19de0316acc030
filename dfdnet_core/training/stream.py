"""Training stacks: an endless stream rendered on the fly, and a pool that reuses them.

Rendering a stack costs about as much as a training step on a CPU, so each rendered stack (with the
config's largest N) is kept in a :class:`SamplePool` and reused: every batch takes B pooled stacks,
one N drawn from the config's range, a random subset of N slices of each (sorted near to far) and a
random horizontal flip. ``pool_refresh_per_step`` fresh stacks replace the oldest ones each step.
"""

from __future__ import annotations


from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch.utils.data import IterableDataset, get_worker_info

from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.model.canonical import canonical_scale
from dfdnet_core.optics import LensOptics, defocus_px_per_diopt
from dfdnet_core.training.config import TrainConfig
from dfdnet_core.training_samples import (
    ProceduralRgbd,
    SampleRecipe,
    TrainingSample,
    make_training_sample,
)


def recipe_from_config(config: TrainConfig, n_slices: int | None = None) -> SampleRecipe:
    """The renderer recipe of a training config (``n_slices`` defaults to the config's maximum N)."""
    return SampleRecipe(
        f_numbers=config.f_numbers,
        n_slices=n_slices or config.n_slices[1],
        far_bound_diopt=config.far_bound_diopt,
        near_bound_diopt=config.near_bound_diopt,
        zoom_range=config.zoom_range,
        crop_size_px=config.crop_size_px,
        colour_jitter=config.colour_jitter,
        render_mode=config.render_mode,  # type: ignore[arg-type]
        adaptive_focus_probability=config.adaptive_focus_probability,
    )


def training_sources(config: TrainConfig) -> list[tuple[Sequence[RgbdSample], float]]:
    """(RGB-D source, sampling weight) pairs: procedural scenes, and DFD-indoor ``train`` if set.

    Raises:
        DataError: the DFD-indoor folder is missing or malformed.
    """
    procedural = ProceduralRgbd(config.procedural_scenes, config.procedural_size_px, seed=0, split="train")
    if not config.dfd_indoor_root or config.dfd_indoor_fraction == 0.0:
        return [(procedural, 1.0)]
    from dfdnet_core.data import open_dataset

    indoor = cast(Sequence[RgbdSample], open_dataset("dfd_indoor", config.dfd_indoor_root, split="train"))
    return [(procedural, 1.0 - config.dfd_indoor_fraction), (indoor, config.dfd_indoor_fraction)]


def validation_source(config: TrainConfig) -> ProceduralRgbd:
    """Held-out procedural scenes (training seeds right after the training scenes)."""
    return ProceduralRgbd(
        config.validation_scenes, config.procedural_size_px, seed=config.procedural_scenes, split="train"
    )


class SampleStream(IterableDataset[TrainingSample]):
    """Endless rendered training stacks from weighted RGB-D sources.

    Draw k of process ``rank`` / DataLoader worker w uses a generator seeded from
    (seed, rank, worker, k), so processes and workers never repeat each other's draws.

    Args:
        sources: (RGB-D sequence, weight) pairs, weights summing to > 0.
        recipe: the rendering recipe.
        seed: base seed.
        rank: process rank (DDP), 0 when alone.
        start: index of the first draw (to continue a resumed run with new draws).
    """

    def __init__(
        self,
        sources: Sequence[tuple[Sequence[RgbdSample], float]],
        recipe: SampleRecipe,
        seed: int = 0,
        rank: int = 0,
        start: int = 0,
    ) -> None:
        super().__init__()
        self.sources = [s for s, w in sources if w > 0]
        self.weights = torch.tensor([w for _, w in sources if w > 0], dtype=torch.float64)
        self.recipe, self.seed, self.rank, self.start = recipe, int(seed), int(rank), int(start)

    def __iter__(self) -> Iterator[TrainingSample]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        k = self.start + worker
        while True:
            mixed = ((self.seed * 7919 + self.rank) * 104_729 + k) % (2**62)
            gen = torch.Generator().manual_seed(mixed)
            which = int(torch.multinomial(self.weights, 1, generator=gen))
            source = self.sources[which]
            index = int(torch.randint(len(source), (1,), generator=gen))
            yield make_training_sample(source[index], self.recipe, gen)
            k += workers


@dataclass(frozen=True)
class Batch:
    """One training batch in network units.

    Attributes:
        stack: (B, N, 3, H, W) float32 RGB in [0, 1] (not yet normalised).
        focus_canonical: (B, N) focus distances in canonical units (metres * kappa).
        depth_canonical: (B, 1, H, W) ground truth in canonical units (0 where masked).
        mask: (B, 1, H, W) bool valid ground truth.
        kappa: (B,) W / f of each sample (metres * kappa = canonical).
        defocus_scale: (B,) circle-of-confusion radius in pixels per canonical dioptre of each sample's camera
            (:func:`dfdnet_core.optics.defocus_px_per_diopt` x kappa).
    """

    stack: torch.Tensor
    focus_canonical: torch.Tensor
    depth_canonical: torch.Tensor
    mask: torch.Tensor
    kappa: torch.Tensor
    defocus_scale: torch.Tensor


def sample_kappa(sample: TrainingSample) -> float:
    """The canonical factor W / max(fx, fy) of a sample (the inference convention)."""
    k = sample.intrinsics
    return canonical_scale(int(sample.stack.shape[-1]), max(k.fx_px, k.fy_px))


def make_batch(
    samples: Sequence[TrainingSample],
    n_slices: int,
    generator: torch.Generator,
    min_depth_m: float,
    max_depth_m: float,
    flip: bool = True,
) -> Batch:
    """Batch pooled samples with a random subset of ``n_slices`` slices each (and a random flip).

    Depth outside [min_depth_m, max_depth_m] is masked. A flip mirrors images and depth alike.
    """
    stacks, focus, depth, mask, kappa, defocus = [], [], [], [], [], []
    for s in samples:
        n_have = int(s.stack.shape[0])
        take = min(n_slices, n_have)
        chosen = torch.sort(torch.randperm(n_have, generator=generator)[:take]).values
        k = sample_kappa(s)
        st, dp, mk = s.stack[chosen], s.depth_m, s.mask
        if flip and bool(torch.rand((), generator=generator) < 0.5):
            st, dp, mk = st.flip(-1), dp.flip(-1), mk.flip(-1)
        valid = mk & (dp >= min_depth_m) & (dp <= max_depth_m)
        stacks.append(st)
        focus.append(s.focus_distances_m[chosen].to(torch.float32) * k)
        depth.append(torch.where(valid, dp * k, torch.zeros_like(dp)))
        mask.append(valid)
        kappa.append(k)
        defocus.append(defocus_px_per_diopt(LensOptics(s.focal_length_m, s.f_number, s.pixel_pitch_m)) * k)
    return Batch(
        torch.stack(stacks),
        torch.stack(focus),
        torch.stack(depth),
        torch.stack(mask),
        torch.tensor(kappa, dtype=torch.float32),
        torch.tensor(defocus, dtype=torch.float32),
    )


class SamplePool:
    """A bounded first-in-first-out pool of rendered samples that batches are drawn from."""

    def __init__(self, capacity: int) -> None:
        self.samples: deque[TrainingSample] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.samples)

    def add(self, sample: TrainingSample) -> None:
        """Add a sample, dropping the oldest when full."""
        self.samples.append(sample)

    def draw(self, batch_size: int, generator: torch.Generator) -> list[TrainingSample]:
        """``batch_size`` distinct pooled samples (with repeats only if the pool is smaller)."""
        n = len(self.samples)
        if n >= batch_size:
            picks = torch.randperm(n, generator=generator)[:batch_size].tolist()
        else:
            picks = torch.randint(n, (batch_size,), generator=generator).tolist()
        return [self.samples[i] for i in picks]


def draw_n_slices(config: TrainConfig, generator: torch.Generator) -> int:
    """N of one batch, uniform over the config's inclusive range."""
    lo, hi = config.n_slices
    return int(torch.randint(lo, hi + 1, (1,), generator=generator))


def metric_depth_m(canonical: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) canonical depth -> metres (divide by each sample's kappa)."""
    return canonical / kappa.view(-1, 1, 1, 1).to(canonical.dtype)


