"""The shared, torch-free layer: the shapes every part of lorafleet agrees on.

What it holds: the job specs (fine-tuning hyperparameters, generation / eval / batch configs), the
training-record formats and their parsing, prompts and seed tasks, the built-in base-model table and
model-name parsing (``model_refs``), decoding request/result types, the OpenAI request formats, the
public job event / progress shapes (``events``) and the pure scheduling policy (``scheduling``).

Who may import it: everyone -- ``api``, ``models``, ``worker`` and the ML core ``worker.ml``.
What it may import: the standard library and pydantic only; never torch / transformers / peft, the
web stack (fastapi, starlette), the database or queue stacks (sqlalchemy, celery, redis), nor
``models`` / ``api`` / ``worker``. ``tests/test_import_boundaries.py`` enforces both directions.
"""
