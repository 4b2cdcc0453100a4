"""Step-indexed training batches, sequential validation batches and sharded test batches."""

from __future__ import annotations

import itertools

import torch

from lns.data.batches import LabelledBatches, SequentialBatches, StepIndexedBatches


def ids(batches) -> list[list[int]]:
    """Image numbers of each batch (of each step of a chunk of training steps)."""
    return [batch[..., 0].long().tolist() for chunk in batches for batch in (chunk if chunk.ndim == 3 else [chunk])]


def numbered(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32)[:, None].expand(n, 3).contiguous()


def test_an_epoch_visits_each_image_once_and_depends_only_on_the_seed() -> None:
    images = numbered(20)
    epoch = ids(StepIndexedBatches(images, 4, seed=7))
    assert len(epoch) == 5
    assert sorted(itertools.chain(*epoch)) == list(range(20))
    assert epoch == ids(StepIndexedBatches(images, 4, seed=7))
    assert epoch != ids(StepIndexedBatches(images, 4, seed=8))


def test_starting_mid_run_gives_the_batches_an_uninterrupted_run_would_see() -> None:
    images = numbered(12)
    step = 0
    full = StepIndexedBatches(images, 4, seed=1, start_step=lambda: step)
    straight = ids(full)
    step = 3
    straight += ids(full)
    step = 5
    resumed = ids(StepIndexedBatches(images, 4, seed=1, start_step=lambda: step))
    assert resumed == straight[5:6]


def test_ranks_split_each_global_batch_without_overlap() -> None:
    images = numbered(16)
    rank0 = ids(StepIndexedBatches(images, 2, seed=3, rank=0, world_size=2))
    rank1 = ids(StepIndexedBatches(images, 2, seed=3, rank=1, world_size=2))
    assert len(rank0) == len(rank1) == 4
    for a, b in zip(rank0, rank1, strict=True):
        assert not set(a) & set(b)
    assert sorted(itertools.chain(*rank0, *rank1)) == list(range(16))


def test_chunks_of_steps_hold_the_batches_of_single_steps_and_end_on_multiples() -> None:
    images = numbered(24)
    single = ids(itertools.islice(StepIndexedBatches(images, 4, seed=5, start_step=lambda: 0), 6))
    single += ids(StepIndexedBatches(images, 4, seed=5, start_step=lambda: 6))[:6]
    step = 0
    chunked = StepIndexedBatches(images, 4, seed=5, start_step=lambda: step, steps_per_call=4)
    first = next(iter(chunked))
    assert first.shape == (4, 4, 3) and ids([first]) == single[:4]
    step = 3  # resumed at a step that is no multiple of 4: a chunk of one step, then chunks of 4 across epochs
    resumed = list(itertools.islice(iter(chunked), 2))
    assert [len(chunk) for chunk in resumed] == [1, 4] and ids(resumed) == single[3:8]


def test_sequential_batches_keep_order_and_the_last_partial_batch() -> None:
    assert ids(SequentialBatches(numbered(5), 2)) == [[0, 1], [2, 3], [4]]
    assert ids(SequentialBatches(numbered(5), 2, rank=1, world_size=2)) == [[1, 3]]


def test_labelled_batches_carry_split_positions_through_sharding() -> None:
    index = torch.tensor([3, 4, 7, 9, 10])
    images = torch.zeros(5, 3, 2, 2)
    masks = torch.zeros(5, 2, 2, dtype=torch.long)
    batches = LabelledBatches(images, masks, index, batch_size=2)
    assert [b["index"].tolist() for b in batches] == [[3, 4], [7, 9], [10]]
    shards = [[b["index"].tolist() for b in batches.shard(r, 2)] for r in range(2)]
    assert shards == [[[3, 7], [10]], [[4, 9]]]
