"""Progress bars on rank 0 (PaddleSeg's Progbar), silent elsewhere."""
from paddleseg.utils import progbar


class Progress:
    def __init__(self, total, enabled=True):
        self.bar = progbar.Progbar(target=total, verbose=1) if enabled and total > 0 else None
        self.n = 0

    def step(self):
        self.n += 1
        if self.bar is not None:
            self.bar.update(self.n)
