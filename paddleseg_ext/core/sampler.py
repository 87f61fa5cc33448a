"""Iteration-indexed, rank-sharded sampling, so that a resumed run sees exactly the batches (and the
random augmentations) an uninterrupted run would have seen."""
import json
import random
import threading
import traceback

import numpy as np
import paddle

from ..utils import UserInputError
from .signals import StopSignals

#: key of a batch that carries a sample's failure instead of data (see `SeededDataset`)
ERROR_KEY = "__load_error__"


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


_GLOBAL_RNG_LOCK = threading.Lock()


class SeededDataset(paddle.io.Dataset):
    """Wraps a dataset so that item `(index, sample_seed)` seeds `random` and `numpy.random` first.

    A sample that fails to load (a corrupt file, ids missing from the json ...) is returned as
    ``{ERROR_KEY: description}`` instead of raising: Paddle's DataLoader hangs (num_workers=0) or
    prints worker tracebacks when a dataset raises, so the error travels as data to the main process,
    where `raise_load_error` raises it (use `collate_samples` as the loader's collate_fn).
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, key):
        index, sample_seed = key
        # One sample at a time per process: with num_workers=0 each DataLoader reads in a thread of this
        # process, and the global RNGs are shared; a second loader (the BatchNorm statistics batches) running
        # while the training loader prefetches would interleave their random draws and make the run differ
        # from one launch to the next.
        with _GLOBAL_RNG_LOCK:
            return self._load(index, sample_seed)

    def _load(self, index, sample_seed):
        random.seed(sample_seed)
        np.random.seed(sample_seed)
        try:
            return self.dataset[index]
        except Exception as e:  # noqa: B902 - re-raised in the main process by raise_load_error
            return {ERROR_KEY: {"user": isinstance(e, UserInputError), "message": str(e),
                                "type": type(e).__name__, "traceback": traceback.format_exc(), "index": int(index)}}

    def __len__(self):
        return len(self.dataset)


def collate_samples(samples):
    """DataLoader collate_fn: Paddle's default collation, or ``{ERROR_KEY: uint8 [n] json}`` when a sample
    of the batch failed to load (see `SeededDataset`)."""
    from paddle.io.dataloader.collate import default_collate_fn

    failed = [s[ERROR_KEY] for s in samples if isinstance(s, dict) and ERROR_KEY in s]
    if failed:
        return {ERROR_KEY: np.frombuffer(json.dumps(failed[0]).encode("utf-8"), dtype=np.uint8).copy()}
    return default_collate_fn(samples)


def raise_load_error(batch):
    """Raise the error a batch from `collate_samples` carries, if any: UserInputError for bad input
    (printed as one line by the command-line scripts), RuntimeError with the worker's traceback otherwise."""
    if not isinstance(batch, dict) or ERROR_KEY not in batch:
        return
    raw = batch[ERROR_KEY]
    raw = raw.numpy() if isinstance(raw, paddle.Tensor) else np.asarray(raw)
    info = json.loads(np.asarray(raw, dtype=np.uint8).tobytes().decode("utf-8"))
    if info["user"]:
        raise UserInputError(info["message"])
    raise RuntimeError("loading training sample {} failed with {}: {}\n--- traceback in the data loader ---\n{}".format(
        info["index"], info["type"], info["message"], info["traceback"]))


def seeded_loader(dataset, sampler, num_workers=0):
    """A DataLoader of `dataset`'s samples for the batches of keys `sampler` yields, each sample seeded
    (`SeededDataset`); load errors travel as data (`collate_samples`, `raise_load_error`)."""
    return paddle.io.DataLoader(SeededDataset(dataset), batch_sampler=sampler, num_workers=num_workers,
                                return_list=True, use_shared_memory=num_workers > 0, collate_fn=collate_samples,
                                worker_init_fn=StopSignals.worker_signals if num_workers > 0 else None)


def to_tensors(batch):
    """{key: paddle.Tensor} of a collated batch (numpy arrays converted, tensors kept)."""
    return {k: (v if isinstance(v, paddle.Tensor) else paddle.to_tensor(v)) for k, v in batch.items()}
