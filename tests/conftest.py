import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def data_dir():
    """The real data mirror from MIXCON_LITE_DATA. Skipped locally when unset; a failure in CI."""
    root = os.environ.get("MIXCON_LITE_DATA")
    if not root:
        if os.environ.get("CI"):
            pytest.fail("MIXCON_LITE_DATA is not set in CI; .ci/run must export it.")
        pytest.skip("MIXCON_LITE_DATA not set (see README, 'Data')")
    return root
