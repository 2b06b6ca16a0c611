"""Preference pairs for training: each answer tokenized exactly as an SFT example (same template, prompt
masked, EOS appended), and micro-batches holding the chosen rows first, then the rejected ones."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts.configs import FinetuneHyperparameters
from contracts.preference_records import PreferencePair
from worker.ml.training.data import TokenizedExample, collate_micro_batch, tokenize_examples


@dataclass(frozen=True)
class TokenizedPair:
    chosen: TokenizedExample
    rejected: TokenizedExample
    line: int

    @property
    def n_tokens(self) -> int:
        return len(self.chosen.input_ids) + len(self.rejected.input_ids)


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer: Any, hp: FinetuneHyperparameters) -> list[TokenizedPair]:
    """Both answers of every pair with the job's template and ``cutoff_len``; the loss is on the response
    tokens only (whatever ``train_on_inputs`` says: DPO compares answers to one prompt). A pair where
    either answer has no response token left within ``cutoff_len`` is dropped."""
    def tokenize(examples):
        return tokenize_examples(examples, tokenizer, cutoff_len=hp.cutoff_len, train_on_inputs=False,
                                 template=hp.prompt_template)

    chosen = tokenize([p.chosen_example() for p in pairs])
    rejected = tokenize([p.rejected_example() for p in pairs])
    return [TokenizedPair(c, r, p.line) for p, c, r in zip(pairs, chosen, rejected)
            if c.n_loss_tokens > 0 and r.n_loss_tokens > 0]


def collate_pairs(pairs: Sequence[TokenizedPair], pad_id: int) -> dict:
    """Right-padded rows: ``pairs[i].chosen`` is row i, ``pairs[i].rejected`` row ``len(pairs) + i``."""
    batch = collate_micro_batch([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)
    batch["n_pairs"] = len(pairs)
    return batch
