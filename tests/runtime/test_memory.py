"""`retain_freed_memory`: after it, a freed large buffer's pages are reused by the next allocation of that
size instead of being faulted in again (what each image's full-size maps would otherwise cost)."""
import resource
import sys

import numpy as np
import pytest

from paddleseg_ext.runtime import retain_freed_memory


def _faults_of_one_buffer(nbytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = np.ones(nbytes // 8, dtype=np.int64)  # written, so every page is touched
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del buffer
    return faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_without_page_faults():
    assert retain_freed_memory() is True
    nbytes = 48 << 20  # above glibc's largest default mmap threshold (32 MiB): always returned to the system
    _faults_of_one_buffer(nbytes)
    # without it every such buffer faults its pages in again (536 faults here with transparent huge pages,
    # 12288 with 4 KiB pages); with it the heap keeps the first buffer's pages
    assert _faults_of_one_buffer(nbytes) < 50
