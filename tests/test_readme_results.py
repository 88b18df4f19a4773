"""The results tables of the committed example READMEs (results/reference/cpu/<model>/README.md, and
README.md should it quote one) quote their reports: every number in them must be the number in the
report's CSV, as rounded for the README, so a README that drifts from its report fails."""
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"results/reference/cpu/([\w.-]+)/report/report\.md")
EXAMPLES = ROOT / "results" / "reference" / "cpu"
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
SPEED = re.compile(r"(prefill ms/token|decode tokens/s) bs(\d+)")
# the README's own words for report columns
HEADERS = {"bits/weight": "bits_per_weight", "weights (MB)": "weights_memory_mb", "load (s)": "load_s",
           "peak memory (MB)": "peak_memory_mb", "Δ Average (95% noise)": "delta_average_points",
           "KL mean (nats)": "kl_mean", "KL p99": "kl_p99", "top-1 agreement": "top1_agreement",
           "perplexity ratio": "perplexity_ratio", "KL median": "kl_median", "KL p99.9": "kl_p99_9",
           "KL max": "kl_max", "RMS Δp": "delta_p_rms", "ln PPL ratio": "ln_perplexity_ratio"}
# README columns that quote two report columns in one cell
PAIRS = {"paired 95% of Δ": ("delta_ci95_low", "delta_ci95_high"),
         "flips lost/gained": ("flips_right_to_wrong", "flips_wrong_to_right")}
# a quoted number may carry its noise after it, from this column
NOISE = {"delta_average_points": "delta_noise_points", "prefill_ms_per_token": "iqr_over_median",
         "decode_tokens_per_s": "iqr_over_median"}


def _tables(text, name):
    """(report folder, header, rows) of every `| variant |` table in `text`."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| variant |"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append((name, block[0], block[2:]))
        i += 1
    return out


def _quoted_tables():
    """Every table of a committed example's README (it quotes its own report), and every table of
    README.md in a section that cites a report."""
    out = []
    for readme in sorted(EXAMPLES.glob("*/README.md")):
        out += _tables(readme.read_text(), readme.parent.name)
    for section in re.split(r"^## ", (ROOT / "README.md").read_text(), flags=re.M):
        cited = CITED.search(section)
        if cited:  # a table of figures (not e.g. the variant names' table beside a link to a report)
            out += [t for t in _tables(section, cited.group(1)) if _quotes_figures(t[1])]
    return out


def _quotes_figures(header):
    return any(c in HEADERS or c in PAIRS or SPEED.fullmatch(c.replace(" (IQR/median)", "")) for c in header)


TABLES = _quoted_tables()


def _report(name):
    folder = EXAMPLES / name / "report"
    return {t: pd.read_csv(folder / f"{t}.csv") for t in ("summary", "quality", "benchmark")}


def _cell_values(report, header, variant):
    """What the report holds for a README column: the value, then its noise where it has one."""
    speed = SPEED.fullmatch(header.replace(" (IQR/median)", ""))
    if speed:
        b = report["benchmark"]
        b = b[(b.variant == variant) & (b.batch_size == int(speed.group(2)))]
        if len(b) and not (b.outcome == "ok").any():
            return []  # the cell ran and could not be measured (e.g. unsupported): the README shows –
        b = b[b.outcome == "ok"]
        if speed.group(1).startswith("prefill"):
            row, col = b[b.scenario == "prefill"], "prefill_ms_per_token"
        else:
            b = b[(b.scenario == "generate") & b.use_cache & (b["mode"].fillna("eager") == "eager")]
            row, col = b[b.new_tokens == b.new_tokens.max()], "decode_tokens_per_s"
        assert len(row) == 1, f"{header} {variant}: {len(row)} benchmark cells"
        return [row[col].item(), row[NOISE[col]].item()]
    if header in PAIRS:
        q = report["quality"].set_index("variant")
        return [q.at[variant, c] for c in PAIRS[header]]
    col = HEADERS.get(header, header)
    for table in ("quality", "summary"):  # quality first: it holds the noise columns
        t = report[table]
        if col in t and variant in set(t.variant):
            row = t[t.variant == variant].iloc[0]
            values = [row[col]]
            noise = NOISE.get(col) or next((c for c in (f"{col}_se", f"{col}_ci95") if c in t), None)
            if noise and noise in t:
                noise_value = row[noise]
                values += [float(x) for x in re.split("–", noise_value)] if isinstance(noise_value, str) \
                    else [noise_value]
            return values
    raise AssertionError(f"README column {header!r} ({variant}) is in no report table")


def _matches(quoted: str, value) -> bool:
    """`quoted` is `value` rounded to the digits it shows."""
    mantissa, _, exponent = quoted.replace(",", "").partition("e")
    decimals = len(mantissa.partition(".")[2])
    tolerance = 0.5 * 10 ** (-decimals + (int(exponent) if exponent else 0))
    return abs(float(quoted.replace(",", "")) - float(value)) <= tolerance * (1 + 1e-9)


@pytest.mark.parametrize("name,header,rows", TABLES, ids=[f"{t[0]}:{t[1][1]}" for t in TABLES])
def test_readme_table_quotes_its_report(name, header, rows):
    report = _report(name)
    wrong = []
    for row in rows:
        variant = row[0]
        for col, cell in zip(header[1:], row[1:]):
            expected = _cell_values(report, col, variant)
            numbers = NUMBER.findall(cell)
            known = [e for e in expected if not (isinstance(e, float) and math.isnan(e))]
            if not numbers:
                if cell not in ("–", str(known[0]) if known else "–"):
                    wrong.append(f"{variant} {col}: README {cell!r}, report {known[0] if known else None!r}")
                continue
            # the README may leave a value's noise out, never change a value
            if len(numbers) > len(known) or not all(_matches(q, e) for q, e in zip(numbers, known)):
                wrong.append(f"{variant} {col}: README {cell!r}, report {known}")
            if HEADERS.get(col, col) == "delta_average_points" and "within_noise" in report["quality"]:
                inside = str(report["quality"].set_index("variant").within_noise.get(variant)) == "True"
                if inside != ("≈" in cell):
                    wrong.append(f"{variant} {col}: README {cell!r} but within_noise is {inside}")
    assert not wrong, "README differs from the report it cites:\n" + "\n".join(wrong)


def test_the_example_readmes_quote_both_committed_reports():
    assert {t[0] for t in TABLES} >= {"smollm2-135m", "toy-llama"}


def test_the_smollm2_tables_are_what_the_generator_makes(tmp_path):
    """tools/readme_tables.py rewrite leaves the SmolLM2 example's results section unchanged: its
    quality and scoreboard tables are the generator's output for the committed report, and the
    scoreboard lists every quoted variant that has per-item outcomes."""
    committed = EXAMPLES / "smollm2-135m" / "README.md"
    readme = tmp_path / "README.md"
    readme.write_text(committed.read_text())
    out = subprocess.run([sys.executable, "tools/readme_tables.py", str(EXAMPLES / "smollm2-135m" / "report"),
                          "rewrite", "Results", "--readme", str(readme)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert readme.read_text() == committed.read_text()
