"""Iteration-indexed, rank-sharded sampling, so that a resumed run sees exactly the batches (and the
random augmentations) an uninterrupted run would have seen."""
import random

import numpy as np
import paddle


class IterationBatchSampler(paddle.io.Sampler):
    """Yields, for iterations `start_iter+1 .. total_iters`, this rank's batch of keys `(index, sample_seed)`.

    Epoch `e` is the permutation `RandomState(seed + e)` of the dataset (or the identity without shuffle);
    the global batch of iteration `it` takes `batch_size * nranks` consecutive entries of the endless stream
    of epochs, and rank r gets the r-th slice. The per-sample seed depends only on (seed, position in the
    stream), so augmentation randomness is independent of worker scheduling and of where a run resumed.
    """

    def __init__(self, num_samples, batch_size, total_iters, start_iter=0, seed=0, rank=0, nranks=1,
                 shuffle=True):
        if num_samples <= 0:
            raise ValueError("the dataset is empty")
        self.n = int(num_samples)
        self.batch_size = int(batch_size)
        self.total_iters = int(total_iters)
        self.start_iter = int(start_iter)
        self.seed = int(seed)
        self.rank = int(rank)
        self.nranks = int(nranks)
        self.shuffle = shuffle

    def _epoch(self, e):
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.RandomState((self.seed + e) % (2 ** 32)).permutation(self.n)

    def __iter__(self):
        global_bs = self.batch_size * self.nranks
        cache = {}
        for it in range(self.start_iter, self.total_iters):
            first = it * global_bs + self.rank * self.batch_size
            keys = []
            for pos in range(first, first + self.batch_size):
                e, i = divmod(pos, self.n)
                if e not in cache:
                    cache.clear()
                    cache[e] = self._epoch(e)
                keys.append((int(cache[e][i]), (self.seed * 1000003 + pos) % (2 ** 31)))
            yield keys

    def __len__(self):
        return max(self.total_iters - self.start_iter, 0)


class SeededDataset(paddle.io.Dataset):
    """Wraps a dataset so that item `(index, sample_seed)` seeds `random` and `numpy.random` first."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, key):
        index, sample_seed = key
        random.seed(sample_seed)
        np.random.seed(sample_seed)
        return self.dataset[index]

    def __len__(self):
        return len(self.dataset)
