"""Multiple-choice eval files through the API: bad choice lines named on upload, acc / acc_norm accepted."""
from __future__ import annotations

import json

from api.schemas.errors import ErrorResponse
from tests.api.routes.job_kit import BASE

GOOD = json.dumps({"instruction": "2 + 2 =", "choices": ["3", "4"], "answer": "4"})


def test_choice_lines_checked_on_upload_and_choice_metrics_accepted(client, alice, upload):
    bad = "\n".join([GOOD, json.dumps({"instruction": "q", "choices": ["a", "b"], "answer": 5}),
                     json.dumps({"instruction": "q", "choices": ["a", 1], "answer": 0})])
    r = client.post("/v1/files", headers=alice.headers, files={"file": ("mc.jsonl", bad.encode())},
                    data={"purpose": "evals"})
    assert r.status_code == 400, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert [(x.line, x.code, x.param) for x in err.lines] == [(2, "answer_out_of_range", "answer"),
                                                              (3, "wrong_type", "choices[1]")]
    f = upload(alice, GOOD + "\n", "evals")
    r = client.post("/v1/evals/jobs", headers=alice.headers,
                    json={"eval_file": f["id"], "models": [BASE], "metrics": ["acc", "acc_norm", "exact_match"]})
    assert r.status_code == 200, r.text
    assert r.json()["metrics"] == ["acc", "acc_norm", "exact_match"]
