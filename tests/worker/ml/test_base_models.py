"""A base model is materialised once into the (shared) models folder, however many processes race."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from worker.ml.base_models import _publish, is_materialised, materialise_once


def slow_convert(out: Path, log: Path) -> None:
    """A stand-in for the GGUF conversion: slow, written piece by piece, and it records each run."""
    with open(log, "a") as f:
        f.write("converted\n")
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    time.sleep(1.0)
    (out / "model.safetensors").write_bytes(b"w" * 1000)


def materialise_in_a_process(target: str, log: str, ready, start) -> None:
    ready.set()
    start.wait(10)
    got = materialise_once(Path(target), lambda out: slow_convert(out, Path(log)))
    assert is_materialised(got)


def test_two_processes_racing_end_with_one_complete_copy(tmp_path):
    models_dir, log = tmp_path / "shared" / "models", tmp_path / "conversions.log"
    target = models_dir / "tiny"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs, readies = [], []
    for _ in range(2):
        ready = ctx.Event()
        procs.append(ctx.Process(target=materialise_in_a_process, args=(str(target), str(log), ready, start)))
        readies.append(ready)
    for p in procs:
        p.start()
    for r in readies:
        assert r.wait(60)
    start.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text().splitlines() == ["converted"]
    assert is_materialised(target) and (target / "model.safetensors").stat().st_size == 1000
    assert sorted(p.name for p in models_dir.iterdir()) == [".tiny.lock", "tiny"]  # no half-built folders


def test_a_present_model_is_not_built_again(tmp_path):
    log = tmp_path / "conversions.log"
    target = tmp_path / "models" / "tiny"
    materialise_once(target, lambda out: slow_convert(out, log))
    materialise_once(target, lambda out: slow_convert(out, log))
    assert log.read_text().splitlines() == ["converted"]


def test_a_complete_copy_published_meanwhile_wins(tmp_path):
    """If the lock did not hold across hosts, the second rename keeps the first complete copy."""
    target, built = tmp_path / "tiny", tmp_path / ".tiny-x" / "model"
    for folder, weights in ((target, b"first"), (built, b"second")):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(weights)
    _publish(built, target)
    assert (target / "model.safetensors").read_bytes() == b"first"


def test_a_half_written_folder_is_replaced(tmp_path):
    target, built = tmp_path / "tiny", tmp_path / ".tiny-x" / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")  # no weights: a conversion that died half-way
    built.mkdir(parents=True)
    (built / "config.json").write_text("{}")
    (built / "model.safetensors").write_bytes(b"w")
    _publish(built, target)
    assert is_materialised(target) and not built.exists()
