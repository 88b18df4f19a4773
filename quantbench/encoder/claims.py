"""The verdict on the comparison's claims about modalities, in words that say what was tested.

The comparison says bitsandbytes "works out of the box for any modality" and GPTQ "has been designed
to support only language models". Both are about what runs, so the verdicts read the outcome of each
method on each encoder: the text encoder (real weights: quality measured, in the methods table) and
the random-weight encoders of other modalities (runs or refuses, no quality). A verdict starts with
its word (holds as far as tested, refuted, not tested) and goes on to name the encoders it rests on."""
from __future__ import annotations

import pandas as pd

from quantbench.backends import UNQUANTIZED

CLAIMS = {
    "bnb": "bitsandbytes works out of the box for any modality",
    "gptq": "GPTQ has been designed to support only language models",
}
HOLDS, REFUTED, NOT_TESTED = "holds as far as tested", "refuted", "not tested"
NAMES = {"bnb": "bitsandbytes", "gptq": "GPTQ"}
REAL, RANDOM = "real weights, quality measured", "random weights, runs only"
ROUTES = {"transformers-gptqconfig": "transformers' GPTQConfig, its block list named by hand",
          "gptqmodel": "GPTQModel"}


def _encoders(df: pd.DataFrame, probes: pd.DataFrame, text: dict, backend: str) -> list[dict]:
    """Each encoder that some method of `backend` was tried on: name, modality, architecture, what
    its weights allow, and those methods' rows."""
    out = [{"encoder": text["name"], "modality": "text", "architecture": text["architecture"], "weights": REAL,
            "rows": df[df.backend == backend]}]
    for name, g in probes.groupby("encoder", sort=False):
        out.append({"encoder": name, "modality": g.modality.iloc[0], "architecture": g.architecture.iloc[0],
                    "weights": RANDOM, "rows": g[g.backend == backend]})
    return [e for e in out if not e["rows"].empty]


def _one(e: dict) -> str:
    article = "an" if e["modality"][0] in "aeiou" else "a"
    return f"{article} {e['modality']} encoder ({e['encoder']}, {e['architecture']}: {e['weights']})"


def _list(encoders: list[dict]) -> str:
    parts = [_one(e) for e in encoders]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _ran(e: dict) -> pd.DataFrame:
    return e["rows"][e["rows"].outcome == "ok"]


def _counts(encoders: list[dict], backend: str, did: str) -> str:
    return "; ".join(f"{e['encoder']}: {len(_ran(e))} of {len(e['rows'])} {NAMES[backend]} methods {did}"
                     for e in encoders)


def _reasons(encoders: list[dict], failed_only: bool = True) -> str:
    """What the libraries said: a refusal's reason, or (failed_only False) also the earlier refusal
    of a route that another route got past."""
    said = []
    for e in encoders:
        rows = e["rows"][e["rows"].outcome != "ok"] if failed_only else e["rows"]
        for reason in dict.fromkeys(r for r in rows.reason.dropna() if r):
            said.append(f"{e['encoder']}: {reason}")
    return ("; the libraries said: " + " | ".join(said)) if said else ""


def bnb_verdict(encoders: list[dict]) -> dict:
    """Holds where every bitsandbytes method quantized and ran every encoder tried."""
    failed = [e for e in encoders if len(_ran(e)) < len(e["rows"])]
    ran = [e for e in encoders if e not in failed]
    if failed:
        verdict = f"{REFUTED}: refused on {_list(failed)}" + (f"; runs on {_list(ran)}" if ran else "")
    else:
        verdict = f"{HOLDS}: runs on {_list(ran)}"
        if all(e["modality"] == "text" for e in ran):
            verdict += "; no other modality tested"
    evidence = _counts(encoders, "bnb", "quantized, reloaded and ran it") + _reasons(failed)
    return {"claim": CLAIMS["bnb"], "verdict": verdict, "evidence": evidence}


def gptq_verdict(encoders: list[dict]) -> dict:
    """Refuted where a GPTQ method quantized an encoder of another modality than text; holds as far
    as tested where GPTQ quantized text only and was refused on every other modality tried."""
    ran = [e for e in encoders if not _ran(e).empty]
    other = [e for e in encoders if e["modality"] != "text"]
    ran_other = [e for e in ran if e in other]
    text_ran = [e for e in ran if e["modality"] == "text"]
    routes = sorted({r for e in text_ran for r in _ran(e).route.dropna() if r})
    on_text = (f"quantized {_list(text_ran)}" + (f" through {' and '.join(ROUTES.get(r, r) for r in routes)}"
                                                  if routes else "")
               if text_ran else "refused on the text encoder")
    if ran_other:
        verdict = f"{REFUTED}: GPTQ quantized {_list(ran_other)}"
    elif not other:
        verdict = f"{NOT_TESTED} beyond text: GPTQ {on_text}"
    else:
        verdict = f"{HOLDS}: GPTQ {on_text}; refused on {_list(other)}"
    evidence = _counts(encoders, "gptq", "quantized it") + _reasons(encoders, failed_only=False)
    return {"claim": CLAIMS["gptq"], "verdict": verdict, "evidence": evidence}


def quality_verdict(df: pd.DataFrame, min_cosine: float, probes: pd.DataFrame) -> dict | None:
    """Whether the quantized text encoders that ran keep their embeddings: the one quality claim,
    made where real weights exist (running is not the same as working well)."""
    ran = df[(df.outcome == "ok") & (df.backend != UNQUANTIZED)]
    if ran.empty:
        return None
    kept = ran[ran.cosine_mean >= min_cosine]
    lost = ", ".join(f"{r.method} {r.cosine_mean:.4f}" for r in ran[ran.cosine_mean < min_cosine].itertuples())
    evidence = f"{len(kept)} of {len(ran)} did" + (f"; below: {lost}" if lost else "")
    if not probes.empty:
        evidence += "; text only: the vision and audio encoders have random weights, so no quality figure"
    return {"claim": f"the quantized text encoders that ran keep their embeddings (mean cosine >= {min_cosine})",
            "verdict": "confirmed" if len(kept) == len(ran) else REFUTED, "evidence": evidence}


def verdicts(df: pd.DataFrame, min_cosine: float, probes: pd.DataFrame | None = None,
             text: dict | None = None) -> list[dict]:
    """One row per claim: claim, verdict (its word, then the encoders it rests on), evidence.
    `df`: the text encoder's methods (report.table); `probes`: the other modalities' (report.probe_table);
    `text`: the text encoder's name and architecture."""
    probes = pd.DataFrame(columns=["encoder", "modality", "architecture", "backend", "outcome", "reason",
                                   "route"]) if probes is None else probes
    text = text or {"name": "text encoder", "architecture": "?"}
    out = []
    for backend, judge in (("bnb", bnb_verdict), ("gptq", gptq_verdict)):
        encoders = _encoders(df, probes, text, backend)
        if not encoders:
            out.append({"claim": CLAIMS[backend], "verdict": NOT_TESTED,
                        "evidence": f"no {backend} method in the config"})
        else:
            out.append(judge(encoders))
    quality = quality_verdict(df, min_cosine, probes)
    return out + ([quality] if quality else [])
