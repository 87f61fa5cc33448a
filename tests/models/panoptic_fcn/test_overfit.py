"""Acceptance for PanopticFCN: its demo config overfits 2 generated frames to PQ >= 80 (the protocol and
the check are those of `tests/core/test_overfit.py`)."""
import pytest

from tests.conftest import FCN_DEMO_CONFIG
from tests.core.test_overfit import check_overfit


@pytest.mark.slow
def test_panoptic_fcn_overfits_two_frames_to_pq_80(tmp_path):
    check_overfit(tmp_path, FCN_DEMO_CONFIG)
