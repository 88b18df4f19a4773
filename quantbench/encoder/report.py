"""The encoder report: one row per method from the records, and the verdict on the comparison's two
claims about modalities, computed from those rows."""
from __future__ import annotations

import pandas as pd

COLUMNS = ["method", "backend", "outcome", "kernel", "sentences", "cosine_mean", "cosine_mean_stderr", "cosine_p5",
           "cosine_min", "nn_agreement", "nn_agreement_stderr", "embed_ms_per_batch", "embed_iqr_over_median",
           "sentences_per_s", "weights_memory_mb", "peak_memory_mb", "quantize_s", "route", "reason"]
CLAIMS = {
    "bnb": "bitsandbytes works out of the box for any modality",
    "gptq": "GPTQ has been designed to support only language models",
}


def table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        m = r.get("metrics", {})
        row = {"method": r["subject"], "backend": r["params"]["method"]["backend"], "outcome": r["outcome"],
               "reason": r.get("reason", "")}
        row.update({k: m.get(k) for k in COLUMNS if k in m})
        refusal = m.get("gptqmodel_refusal")
        if refusal:  # quantized by a second route after GPTQModel refused: keep its words
            row["reason"] = f"GPTQModel refused ({refusal['error_type']}: {refusal['error']})"
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def verdicts(df: pd.DataFrame, min_cosine: float) -> list[dict]:
    """The comparison's claims are about what runs: bitsandbytes' holds when every bnb method
    quantized and ran the encoder, GPTQ's when every GPTQ method was refused (one GPTQ method that
    quantizes the encoder refutes 'only language models'). A third line says whether the methods that
    ran kept the embeddings (mean cosine to the unquantized ones >= min_cosine), since running is not
    the same as working well."""
    out = []
    for backend, claim in CLAIMS.items():
        rows = df[df.backend == backend]
        if rows.empty:
            out.append({"claim": claim, "verdict": "not tested", "evidence": f"no {backend} method in the config"})
            continue
        ok = rows[rows.outcome == "ok"]
        if backend == "bnb":
            verdict = "confirmed" if len(ok) == len(rows) else "refuted"
            evidence = f"{len(ok)} of {len(rows)} bitsandbytes methods quantized and ran the encoder"
            refused = sorted(set(rows[rows.outcome != "ok"].reason))
        else:
            verdict = "confirmed" if ok.empty else "refuted"
            refused = sorted(set(rows.reason.dropna()) - {""})
            routes = sorted(set(ok.route.dropna()))
            evidence = (f"{len(ok)} of {len(rows)} GPTQ methods quantized the encoder"
                        + (f" (route: {', '.join(routes)})" if routes else ""))
        if refused:
            evidence += f"; the library said: {refused[0]}"
        out.append({"claim": claim, "verdict": verdict, "evidence": evidence})
    ran = df[df.outcome == "ok"]
    ran = ran[ran.backend != "none"]
    if not ran.empty:
        kept = ran[ran.cosine_mean >= min_cosine]
        lost = ", ".join(f"{r.method} {r.cosine_mean:.4f}" for r in ran[ran.cosine_mean < min_cosine].itertuples())
        out.append({"claim": f"the quantized encoders that ran keep their embeddings (mean cosine >= {min_cosine})",
                    "verdict": "confirmed" if len(kept) == len(ran) else "refuted",
                    "evidence": f"{len(kept)} of {len(ran)} did" + (f"; below: {lost}" if lost else "")})
    return out


def _sentences(df: pd.DataFrame) -> str:
    counts = sorted({int(n) for n in df.sentences.dropna()})
    return "/".join(map(str, counts)) or "no"


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def markdown(title: str, df: pd.DataFrame, claims: list[dict], setup: dict, skipped: dict) -> str:
    shown = [c for c in COLUMNS if c != "reason"]
    lines = [f"# {title}: quantizing a sentence encoder", "",
             f"Model `{setup['model']}` ({setup['model_type']}); {_sentences(df)} sentences from "
             f"`{setup['sentences_file']}`, batch {setup['batch_size']}, max {setup['max_length']} tokens, "
             f"device {setup['device']}. Embeddings are the mean of the last hidden states over real tokens; "
             f"quality is against the unquantized baseline `{setup['baseline']}`: per-sentence cosine "
             "(mean ± standard error, 5th percentile, minimum) and the share of sentences whose nearest "
             "neighbour in the set is the baseline's (± binomial standard error).", "",
             "## The claims", "", "| claim | verdict | evidence |", "|---|---|---|"]
    lines += [f"| {c['claim']} | **{c['verdict']}** | {_cell(c['evidence'])} |" for c in claims]
    lines += ["", "## Methods", "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in shown) + " |")
    refused = df[df.reason.fillna("") != ""]
    if not refused.empty:
        lines += ["", "## Refused by a library", ""]
        lines += [f"- `{r.method}` ({r.backend}, {r.outcome}): {r.reason}" for r in refused.itertuples()]
    if skipped:
        lines += ["", "## Skipped on this machine", ""] + [f"- `{m}`: {why}" for m, why in skipped.items()]
    return "\n".join(lines) + "\n"
