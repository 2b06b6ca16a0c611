"""Left padding shared by prefill, beam search and the reference loss."""
from __future__ import annotations

import torch

from worker.ml.decoding.rows import left_pad, positions_of


def test_left_pad_right_aligns_every_row():
    ids, mask = left_pad([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 10]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert ids.dtype == mask.dtype == torch.long
    assert positions_of(mask).tolist() == [[0, 1, 2], [0, 0, 0], [0, 0, 1]]
