"""The encoder report: the text encoder's table (quality against the unquantized model), the other
modalities' table (runs or refuses, random weights), and the verdict on the comparison's claims
(quantbench.encoder.claims), all from the records."""
from __future__ import annotations

import pandas as pd

COLUMNS = ["method", "backend", "outcome", "kernel", "sentences", "cosine_mean", "cosine_mean_stderr", "cosine_p5",
           "cosine_min", "nn_agreement", "nn_agreement_stderr", "embed_ms_per_batch", "embed_iqr_over_median",
           "sentences_per_s", "weights_memory_mb", "peak_memory_mb", "quantize_s", "route", "reason"]
PROBE_COLUMNS = ["encoder", "modality", "architecture", "method", "backend", "outcome", "failed_at", "kernel",
                 "quantized_linear_layers", "weights_memory_mb", "forward_ms_per_batch", "forward_iqr_over_median",
                 "output_cosine_mean", "output_cosine_min", "quantize_s", "route", "reason"]


def table(records: list[dict]) -> pd.DataFrame:
    """The text encoder: one row per method."""
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


def _probe_reason(r: dict) -> str:
    """The library's words, naming the route: GPTQModel's refusal first where transformers' GPTQConfig
    was tried after it."""
    reason = r.get("reason", "")
    if not reason:
        return ""
    earlier = (r.get("error") or {}).get("earlier_refusals", {}).get("gptqmodel")
    where = f" at {r['failed_at']}" if r.get("failed_at") else ""
    if earlier:
        return (f"GPTQModel refused ({earlier['error_type']}: {earlier['error']}); "
                f"transformers' GPTQConfig refused{where} ({reason})")
    return f"refused{where} ({reason})"


def probe_table(records: list[dict]) -> pd.DataFrame:
    """The random-weight encoders of other modalities: one row per encoder and method."""
    rows = []
    for r in records:
        m = r.get("metrics", {})
        row = {"encoder": r["encoder"], "modality": r["modality"], "architecture": r["architecture"],
               "method": r["subject"], "backend": r["params"]["method"]["backend"], "outcome": r["outcome"],
               "failed_at": r.get("failed_at"), "reason": _probe_reason(r)}
        row.update({k: m.get(k) for k in PROBE_COLUMNS if k in m})
        rows.append(row)
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def _sentences(df: pd.DataFrame) -> str:
    counts = sorted({int(n) for n in df.sentences.dropna()})
    return "/".join(map(str, counts)) or "no"


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def _rows(df: pd.DataFrame, columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for _, row in df.iterrows()]


def _probe_setup(probes: pd.DataFrame, setup: dict) -> str:
    encoders = probes.drop_duplicates("encoder")
    named = "; ".join(f"`{r.encoder}`: {r.architecture} ({r.modality}), from "
                      f"`{setup['random_encoders'][r.encoder]}`" for r in encoders.itertuples())
    return (f"{named}. Built here from transformers' own config classes with random weights (no vision or "
            "audio checkpoint is at hand offline), so these rows answer one question: does the method quantize "
            "the model, reload the saved folder and run it, or does its library refuse, and where (quantize, "
            f"load, run) with what words. Each runs one batch of {setup['random_batch_size']} synthetic inputs "
            "of its kind (standard-normal images of its configured size; one second of 16 kHz samples). "
            "`output_cosine_*` compares the quantized model's last hidden states with the unquantized model's "
            "on that batch: a check that the quantized layers compute about the same function, not a quality "
            "figure. Timings are one batch on a shared CPU and say little.")


def markdown(title: str, df: pd.DataFrame, claims: list[dict], setup: dict, skipped: dict,
             probes: pd.DataFrame | None = None) -> str:
    probes = probe_table([]) if probes is None else probes
    heading = "quantizing encoders: text, " + ", ".join(dict.fromkeys(probes.modality)) if len(probes) \
        else "quantizing a sentence encoder"
    lines = [f"# {title}: {heading}", "",
             f"Text: model `{setup['model']}` ({setup['model_type']}, real weights); {_sentences(df)} sentences "
             f"from `{setup['sentences_file']}`, batch {setup['batch_size']}, max {setup['max_length']} tokens, "
             f"device {setup['device']}. Embeddings are the mean of the last hidden states over real tokens; "
             f"quality is against the unquantized baseline `{setup['baseline']}`: per-sentence cosine "
             "(mean ± standard error, 5th percentile, minimum) and the share of sentences whose nearest "
             "neighbour in the set is the baseline's (± binomial standard error)."]
    if len(probes):
        lines += ["", "Other modalities: " + _probe_setup(probes, setup)]
    lines += ["", "## The claims", "", "| claim | verdict | evidence |", "|---|---|---|"]
    lines += [f"| {c['claim']} | **{_cell(c['verdict'])}** | {_cell(c['evidence'])} |" for c in claims]
    lines += ["", "## Text encoder: methods", ""] + _rows(df, [c for c in COLUMNS if c != "reason"])
    refused = df[df.reason.fillna("") != ""]
    if not refused.empty:
        lines += ["", "### Refused by a library", ""]
        lines += [f"- `{r.method}` ({r.backend}, {r.outcome}): {r.reason}" for r in refused.itertuples()]
    if len(probes):
        lines += ["", "## Other modalities (random weights): runs or refuses", ""]
        lines += _rows(probes, [c for c in PROBE_COLUMNS if c not in ("reason", "architecture")])
        said = probes[probes.reason.fillna("") != ""]
        if not said.empty:
            lines += ["", "### Refused by a library", ""]
            lines += [f"- `{r.encoder}` × `{r.method}` ({r.backend}): {r.reason}" for r in said.itertuples()]
    if skipped:
        lines += ["", "## Skipped on this machine", ""] + [f"- `{m}`: {why}" for m, why in skipped.items()]
    return "\n".join(lines) + "\n"
