"""Iteration sampler: exact resume, rank sharding, per-sample seeds."""
import random
import threading
import time

import numpy as np
import paddle

from paddleseg_ext.core.sampler import IterationBatchSampler, SeededDataset


def _batches(**kw):
    return list(IterationBatchSampler(**kw))


def test_resumed_sampler_continues_the_same_stream():
    full = _batches(num_samples=7, batch_size=3, total_iters=10, seed=5)
    resumed = _batches(num_samples=7, batch_size=3, total_iters=10, seed=5, start_iter=4)
    assert len(full) == 10 and resumed == full[4:]


def test_ranks_split_each_global_batch_disjointly():
    r0 = _batches(num_samples=8, batch_size=2, total_iters=4, seed=1, rank=0, nranks=2)
    r1 = _batches(num_samples=8, batch_size=2, total_iters=4, seed=1, rank=1, nranks=2)
    # the first two global batches of 4 make one epoch of 8
    first_epoch = [k[0] for b in r0[:2] + r1[:2] for k in b]
    assert sorted(first_epoch) == list(range(8))
    seeds = [k[1] for b in r0 + r1 for k in b]
    assert len(set(seeds)) == len(seeds)


def test_epochs_are_permutations():
    b = _batches(num_samples=5, batch_size=5, total_iters=3, seed=0)
    for batch in b:
        assert sorted(k[0] for k in batch) == list(range(5))
    assert [k[0] for k in b[0]] != [k[0] for k in b[1]] or [k[0] for k in b[1]] != [k[0] for k in b[2]]


def test_seeded_dataset_reproduces_randomness():
    class Rand(paddle.io.Dataset):
        def __getitem__(self, i):
            return np.random.rand() + i

        def __len__(self):
            return 3

    ds = SeededDataset(Rand())
    assert ds[(1, 42)] == ds[(1, 42)]
    assert ds[(1, 42)] != ds[(1, 43)]


class _SlowRandomDataset:
    """Each item draws from the global RNGs in several steps, yielding the thread in between."""

    def __getitem__(self, index):
        draws = []
        for _ in range(5):
            draws.append(np.random.rand())
            time.sleep(0.002)
            draws.append(random.random())
        return draws

    def __len__(self):
        return 8


def test_seeded_dataset_is_reproducible_while_another_thread_reads_it():
    """With num_workers=0 a DataLoader reads in a thread, so the training loader and a second loader (the
    BatchNorm statistics batches) read at the same time; each item must still get exactly its seed's draws."""
    ds = SeededDataset(_SlowRandomDataset())
    keys = [(i % 8, 1000 + i) for i in range(12)]
    alone = [ds[k] for k in keys]
    other = [(i % 8, 5000 + i) for i in range(12)]
    stop = threading.Event()

    def read_other():
        while not stop.is_set():
            for k in other:
                ds[k]

    t = threading.Thread(target=read_other)
    t.start()
    try:
        together = [ds[k] for k in keys]
    finally:
        stop.set()
        t.join()
    assert together == alone
