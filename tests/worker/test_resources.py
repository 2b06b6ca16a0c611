"""Per-process worker resources: LORAFLEET_TORCH_THREADS caps torch's CPU threads only when set."""
from __future__ import annotations

import torch

from models.settings import Settings
from worker.resources import apply_torch_threads


def test_torch_threads_setting_is_applied_only_when_set(tmp_path):
    before = torch.get_num_threads()
    try:
        apply_torch_threads(Settings(LORAFLEET_DATA_DIR=str(tmp_path)))
        assert torch.get_num_threads() == before  # 0: torch's default is left alone
        apply_torch_threads(Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_TORCH_THREADS="1"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
