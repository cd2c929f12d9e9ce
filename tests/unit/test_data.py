from __future__ import annotations

import json

import pytest
import torch

from excise.data import IGNORE, Example, encode, iter_batches, load_examples, make_batches, per_sample_loss
from excise.errors import ExciseError
from excise.models.tiny import byte_tokenizer, tiny_model


def _write(path, text):
    path.write_text(text)
    return path


def test_jsonl_csv_alpaca_and_advbench_formats(tmp_path) -> None:
    j = _write(tmp_path / "a.jsonl", '{"prompt": "p1", "response": "r1"}\n\n{"prompt": "p2"}\n')
    c = _write(tmp_path / "b.csv", "goal,target\nDo harm,Sure here\n")
    a = tmp_path / "c.json"
    a.write_text(
        json.dumps(
            [{"instruction": "Add", "input": "1 2", "output": "3"}, {"instruction": "Hi", "output": "Hello"}]
        )
    )
    t = _write(tmp_path / "t.jsonl", '{"text": "plain words"}\n')
    assert [(e.prompt, e.response) for e in load_examples(j)] == [("p1", "r1"), ("p2", None)]
    assert [(e.prompt, e.response) for e in load_examples(c)] == [("Do harm", "Sure here")]
    assert [(e.prompt, e.response) for e in load_examples(a)] == [("Add\n\n1 2", "3"), ("Hi", "Hello")]
    (ex,) = load_examples(t)
    assert ex.response == "plain words" and not ex.chat


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("x.jsonl", '{"question": "q"}\n', "no usable column"),
        ("e.jsonl", "\n", "empty"),
        ("bad.jsonl", "{not json\n", "not valid JSON"),
        ("x.txt", "hello", "unsupported data file type"),
    ],
)
def test_bad_data_files(tmp_path, name, content, match) -> None:
    with pytest.raises(ExciseError, match=match):
        load_examples(_write(tmp_path / name, content))


def test_missing_file_and_required_response(tmp_path) -> None:
    with pytest.raises(ExciseError, match="not found"):
        load_examples(tmp_path / "missing.jsonl")
    p = _write(tmp_path / "p.jsonl", '{"prompt": "only a prompt"}\n')
    with pytest.raises(ExciseError, match="no response"):
        load_examples(p, require_response=True)


def test_prompt_tokens_are_masked_and_response_scored() -> None:
    tok = byte_tokenizer()
    (enc,) = encode(tok, [Example("abc", "xy")])
    prompt_ids = tok(
        tok.apply_chat_template(
            [{"role": "user", "content": "abc"}], add_generation_prompt=True, tokenize=False
        ),
        add_special_tokens=False,
    )["input_ids"]
    assert enc.n_prompt == len(prompt_ids)
    assert list(enc.input_ids[: enc.n_prompt]) == prompt_ids
    # response bytes then EOS
    assert list(enc.input_ids[enc.n_prompt :]) == tok("xy", add_special_tokens=False)["input_ids"] + [
        tok.eos_token_id
    ]


def test_padding_is_masked_in_batches() -> None:
    tok = byte_tokenizer()
    exs = [Example("a", "b"), Example("a much longer prompt", "and a longer response")]
    (batch,) = make_batches(tok, exs, batch_size=2)
    lengths = batch.attention_mask.sum(1)
    for b in range(2):
        n = int(lengths[b])
        assert (batch.input_ids[b, n:] == tok.pad_token_id).all()
        assert (batch.labels[b, n:] == IGNORE).all()
        assert (batch.labels[b, :n] != IGNORE).sum() > 0


def test_per_sample_loss_unchanged_by_padding() -> None:
    model, tok = tiny_model("llama", seed=1)
    exs = [Example("hi", "ok"), Example("a longer prompt here", "a much longer response there")]
    enc = encode(tok, exs)
    (together,) = iter_batches(enc, 2, tok.pad_token_id)
    alone = next(iter_batches(enc[:1], 1, tok.pad_token_id))
    with torch.no_grad():
        l2 = per_sample_loss(
            model(input_ids=together.input_ids, attention_mask=together.attention_mask).logits, together
        )
        l1 = per_sample_loss(
            model(input_ids=alone.input_ids, attention_mask=alone.attention_mask).logits, alone
        )
    torch.testing.assert_close(l2[0], l1[0], rtol=1e-5, atol=1e-5)


def test_per_sample_loss_matches_naive_mean_nll() -> None:
    model, tok = tiny_model("gpt2", seed=2)
    (batch,) = make_batches(tok, [Example("p", "resp"), Example("q", "longer response")], batch_size=2)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    got = per_sample_loss(logits, batch)
    for b in range(2):
        terms = []
        for t in range(1, batch.input_ids.shape[1]):
            if batch.labels[b, t] != IGNORE:
                lp = torch.log_softmax(logits[b, t - 1], -1)
                terms.append(-lp[batch.labels[b, t]])
        torch.testing.assert_close(got[b], torch.stack(terms).mean())


def test_prompt_longer_than_context_is_an_error() -> None:
    model, tok = tiny_model("llama", context=32)
    with pytest.raises(ExciseError, match="more than the context"):
        make_batches(tok, [Example("x" * 100, "y")], model=model)


def test_bad_batch_size() -> None:
    with pytest.raises(ExciseError, match="batch size"):
        list(iter_batches([], 0, 0))
