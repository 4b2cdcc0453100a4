"""Mini-batches drawn from an in-memory image tensor, as a pure function of the global step."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor


class StepIndexedBatches:
    """Shuffled mini-batches of ``images`` whose order depends only on the seed and the global step, served in
    chunks of ``steps_per_call`` consecutive steps: tensors of shape (steps, batch_size, C, H, W).

    Dataset epoch ``e`` (``len(images) // (batch_size * world_size)`` steps) uses the permutation drawn from
    ``seed + e``; each optimizer step takes ``batch_size * world_size`` consecutive entries of it and rank ``r``
    keeps its slice. Iteration starts at ``start_step()`` so a resumed run sees exactly the batches the
    uninterrupted run would have seen, and ranks never share an image within a step. A chunk ends at a multiple of
    ``steps_per_call`` (the first one after a resume at another step is shorter), so the step count stays on the
    multiples that checkpoints and logging use. One pass (a Lightning epoch) is ``len(self)`` chunks; with one step
    per call it is one dataset epoch. Sampling happens on the tensor's own device, so a dataset kept on a GPU never
    goes through a DataLoader.
    """

    def __init__(
        self,
        images: Tensor,
        batch_size: int,
        *,
        seed: int,
        start_step: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
        steps_per_call: int = 1,
    ) -> None:
        self.images = images
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size
        self.steps_per_call = steps_per_call
        self._orders: dict[int, Tensor] = {}

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one dataset epoch."""
        return len(self.images) // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        return -(-self.steps_per_epoch // self.steps_per_call)

    def permutation(self, epoch: int) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.images), generator=generator).to(self.images.device)

    def _order(self, epoch: int) -> Tensor:
        if epoch not in self._orders:
            self._orders = {epoch: self.permutation(epoch)}  # steps only move forward: keep one epoch's order
        return self._orders[epoch]

    def indices(self, first_step: int, steps: int) -> Tensor:
        """Positions in ``images`` of this rank's batches for ``steps`` steps from ``first_step``: (steps, batch)."""
        global_batch = self.batch_size * self.world_size
        epoch, offset = divmod(first_step, self.steps_per_epoch)
        if offset + steps <= self.steps_per_epoch:  # one dataset epoch: one slice
            chunk = self._order(epoch)[offset * global_batch : (offset + steps) * global_batch]
            return chunk.view(steps, self.world_size, self.batch_size)[:, self.rank]
        return torch.cat([self.indices(step, 1) for step in range(first_step, first_step + steps)])

    def state_dict(self) -> dict[str, int]:
        """The position lives in the trainer's global step; only the seed needs to travel with a checkpoint."""
        return {"seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed = state["seed"]

    def __iter__(self) -> Iterator[Tensor]:
        step = self.start_step()
        done = (step // self.steps_per_call) % len(self)  # chunks of this pass already trained
        for _ in range(len(self) - done):
            steps = self.steps_per_call - step % self.steps_per_call
            yield self.images[self.indices(step, steps)]
            step += steps


class SequentialBatches:
    """Batches of ``images`` in order (no shuffling, last batch kept); rank ``r`` takes every ``world_size``-th."""

    def __init__(self, images: Tensor, batch_size: int, *, rank: int = 0, world_size: int = 1) -> None:
        self.images = images[rank::world_size]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __iter__(self) -> Iterator[Tensor]:
        for start in range(0, len(self.images), self.batch_size):
            yield self.images[start : start + self.batch_size]


class LabelledBatches:
    """Test batches ``{"images", "masks", "index"}`` over the given positions of a split.

    ``index`` holds positions in the split (not in this subset), so per-image seeds and output rows stay tied to
    the image whatever the batch size, the subset or the number of processes.
    """

    def __init__(self, images: Tensor, masks: Tensor, index: Tensor, batch_size: int) -> None:
        self.images = images
        self.masks = masks
        self.index = index
        self.batch_size = batch_size

    def shard(self, rank: int, world_size: int) -> LabelledBatches:
        """The part of the batches that process ``rank`` of ``world_size`` handles."""
        rows = slice(rank, None, world_size)
        return LabelledBatches(self.images[rows], self.masks[rows], self.index[rows], self.batch_size)

    def __len__(self) -> int:
        return -(-len(self.index) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for start in range(0, len(self.index), self.batch_size):
            rows = slice(start, start + self.batch_size)
            yield {"images": self.images[rows], "masks": self.masks[rows], "index": self.index[rows]}
