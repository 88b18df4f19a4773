"""Every figure the report writes, drawn from the committed records: no text overlaps another or a
legend, and every colour comes from the style module."""
import itertools
import shutil
from pathlib import Path

import matplotlib.colors as mcolors
import pandas as pd
import pytest
import yaml
from matplotlib.legend import Legend
from matplotlib.markers import MarkerStyle

from quantbench import validation
from quantbench.records import load_records
from quantbench.report import figures, style
from quantbench.report.params import record_paths, report_params

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = {"smollm2-135m": "config/smollm2.yaml", "toy-llama": "config/config.yaml",
             "reference/h200/llama2-7b-fast": "config/llama2-7b-fast.yaml"}


def _inputs(tmp_path, name):
    folder = ROOT / "results" / name if name.startswith("reference/") else ROOT / "results" / "reference" / "cpu" / name
    shutil.copytree(folder / "records", tmp_path / "records")
    exp = validation.build(yaml.safe_load((ROOT / COMMITTED[name]).read_text()), cuda_available=True)
    paths = [p for p in record_paths(exp, str(tmp_path)) if Path(p).exists()]
    return figures.inputs(load_records(paths), report_params(exp))


@pytest.fixture(scope="module", params=sorted(COMMITTED))
def committed(request, tmp_path_factory):
    return _inputs(tmp_path_factory.mktemp(request.param.replace("/", "-")), request.param)


def _tick_labels(axis):
    """The tick labels drawn: those of ticks inside the view (others keep stale positions)."""
    locs = axis.get_majorticklocs()
    lo, hi = sorted(axis.get_view_interval())
    span = (hi - lo) * 1e-9
    return [label for loc, tick in zip(locs, axis.get_major_ticks(len(locs))) if lo - span <= loc <= hi + span
            for label in (tick.label1, tick.label2) if label.get_visible()]


def _texts(fig, renderer):
    """(text, box) of every text drawn outside a legend: titles, axis and tick labels, point labels,
    notes; and (name, box) of every legend."""
    legends = [lg for lg in fig.findobj(Legend) if lg.get_visible()]
    candidates = list(fig.texts)
    for ax in fig.axes:
        candidates += [ax.title, *ax.texts]
        if ax.axison:  # an empty panel turns its axes off and says why in a text
            candidates += [ax.xaxis.label, ax.yaxis.label, *_tick_labels(ax.xaxis), *_tick_labels(ax.yaxis)]
    shown = [(repr(t.get_text()), t.get_window_extent(renderer)) for t in candidates
             if t.get_visible() and t.get_text().strip()]
    return shown, [(f"legend {i}", lg.get_window_extent(renderer)) for i, lg in enumerate(legends)]


def _overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("name", figures.FIGURES)
def test_no_text_overlaps_a_text_or_a_legend(committed, name, tmp_path):
    fig, caption = figures.draw(name, committed)
    fig.savefig(tmp_path / f"{name}.png", dpi=style.DPI)  # what the report writes, laid out as written
    renderer = fig.canvas.get_renderer()
    texts, legends = _texts(fig, renderer)
    clashes = [(a, b) for (a, ba), (b, bb) in itertools.combinations(texts + legends, 2) if _overlap(ba, bb)]
    assert not clashes, f"{name}: overlapping {clashes}"
    assert caption.strip()


def _data_colours(fig):
    """Every colour the figure's data artists use (not the axes' frame, grid or legend)."""
    seen = set()
    # a colour bar is the scale of a heatmap's colour map (checked by name), not data in its own colours
    for ax in (a for a in fig.axes if a.get_label() != "<colorbar>"):
        for line in ax.lines:
            # only what is drawn: an error bar's caps are markers without a line, drawn by their edge
            if line.get_linestyle() not in ("None", ""):
                seen.add(line.get_color())
            marker = MarkerStyle(line.get_marker())
            if line.get_marker() not in ("None", "", None):
                seen.add(line.get_markeredgecolor())
                if marker.is_filled():
                    seen.add(line.get_markerfacecolor())
        for patch in ax.patches:
            seen |= {tuple(patch.get_facecolor()), tuple(patch.get_edgecolor())}
        for coll in ax.collections:
            seen |= {tuple(c) for c in coll.get_edgecolor()} | {tuple(c) for c in coll.get_facecolor()}
    return {mcolors.to_hex(c) for c in seen if c != "none" and mcolors.to_rgba(c)[3] > 0}


def test_every_figure_takes_its_colours_from_the_style(committed, monkeypatch):
    # replace the style's colours with ones no library default uses: any other colour in a figure
    # was chosen outside the style module
    fake = {f: (f"#{i + 1:02x}{i + 17:02x}{i + 33:02x}", marker, label)
            for i, (f, (_, marker, label)) in enumerate(style.FAMILIES.items())}
    monkeypatch.setattr(style, "FAMILIES", fake)
    monkeypatch.setattr(style, "NEUTRAL", "#0a0b0c")
    monkeypatch.setattr(style, "FRONT", "#0c0b0a")
    monkeypatch.setattr(style, "HEAT", "cividis")
    monkeypatch.setattr(committed, "looks", style.looks(committed.variants))
    allowed = {style.NEUTRAL, style.FRONT} | {mcolors.to_hex(c) for c, _, _ in fake.values()}
    allowed |= {mcolors.to_hex(lk.color) for lk in committed.looks.values()}
    for name in figures.FIGURES:
        fig, _ = figures.draw(name, committed)
        stray = _data_colours(fig) - allowed
        assert not stray, f"{name} draws in colours the style module did not give it: {stray}"
        maps = {im.get_cmap().name for ax in fig.axes for im in ax.images}
        assert maps <= {style.HEAT}, f"{name} draws a heatmap in a colour map the style did not give it: {maps}"


def test_speed_figures_of_a_fast_only_run_show_its_fast_mode(tmp_path):
    """A GPU reference config runs no eager generate: the decode figures draw its fused cells (and
    say so) instead of an empty panel."""
    data = _inputs(tmp_path, "reference/h200/llama2-7b-fast")
    for name in ("decode_vs_memory", "throughput_vs_batch"):
        fig, caption = figures.draw(name, data)
        assert "fused mode" in caption, caption
        assert not any("no generate timings" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_a_setup_gets_the_figures_of_the_stages_it_runs():
    """A speed-only GPU setup (no evaluate, fine-tune or recipe) gets no empty quality, fine-tune or
    recipe figures; the embedded default, which runs every stage, gets every figure."""
    from quantbench.report.params import stages

    def figures_of(config):
        exp = validation.build(yaml.safe_load((ROOT / "config" / config).read_text()), cuda_available=True)
        return figures.wanted(stages(exp))

    assert figures_of("llama2-7b-fast.yaml") == ["decode_vs_memory", "throughput_vs_batch", "memory"]
    assert figures_of("config.yaml") == figures.FIGURES


def _visible_panels(fig):
    return [ax for ax in fig.axes if ax.axison]


def test_throughput_is_one_figure_of_two_panels_with_noisy_cells_hollow(committed):
    """Prefill and generate side by side, a row per variant and a marker per batch size: two panels
    whatever the number of families; each cell over the spread limit is drawn hollow, and only those."""
    from quantbench.report import tables
    from quantbench.report.figures import speed

    fig, caption = figures.draw("throughput_vs_batch", committed)
    assert len(_visible_panels(fig)) <= 2
    bench = committed.bench
    ok = bench[bench.outcome == "ok"]
    decode, _ = speed._decode_cells(bench)
    drawn = pd.concat([ok[ok.scenario == "prefill"], decode])
    hollow = [line for ax in fig.axes for line in ax.lines
              if line.get_linestyle() in ("None", "") and line.get_marker() not in ("None", "", None, "|", "_")
              and isinstance(line.get_markerfacecolor(), str) and line.get_markerfacecolor() == "none"]
    assert len(hollow) == int(tables.noisy_mask(drawn).sum())
    if len(hollow):
        assert "Hollow" in caption


def test_decode_figure_names_its_front_and_numbers_nothing(committed):
    """The variants on the front are named on the plot; no numbered markers and no lookup key."""
    from quantbench.report import pareto
    from quantbench.report.figures import speed

    fig, _ = figures.draw("decode_vs_memory", committed)
    names = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "point-label"]
    assert not any(n.strip().isdigit() for n in names)
    for lg in fig.findobj(Legend):
        assert not any(t.get_text().split()[0].isdigit() for t in lg.get_texts())
    dec, _ = speed._decode_cells(committed.bench)
    for bs, cells in dec.groupby("batch_size"):
        lo, hi = speed._spread(cells, "decode_tokens_per_s")
        front = pareto.pareto_front(cells.assign(hw=(lo + hi) / 2), "weights_memory_mb", "decode_tokens_per_s",
                                    True, "hw")
        assert set(front.variant) <= set(names), f"batch {bs}: front {list(front.variant)} named {names}"


def test_recipe_figure_has_its_bar_to_beat(committed):
    """Each stage's task average and KL beside the untuned deploy model as a horizontal line; the KL
    axes start at zero."""
    from quantbench.experiment import requantize_targets
    from quantbench.report.figures import recipe

    fig, _ = figures.draw("recipe_kl", committed)
    recipes = [r for r in committed.params.get("recipes", [])
               if f"{r['finetune_on']}+lora" in set(committed.quality.get("variant", []))]
    if not recipes:
        pytest.skip("no recipe in these records")
    refs = [line for ax in fig.axes for line in ax.lines if line.get_gid() == recipe.BAR_GID]
    assert refs, "no bar to beat drawn"
    assert all(len(set(line.get_ydata())) == 1 for line in refs)  # horizontal
    targets = {t for r in recipes for t in requantize_targets(r)}
    q = committed.quality.set_index("variant")
    assert {float(line.get_ydata()[0]) for line in refs} <= {float(q.at[t, c]) for t in targets
                                                              for c in ("Average", "kl_mean")}
    kl_axes = [ax for ax in fig.axes if ax.axison and ax.get_title().startswith("KL")]
    assert kl_axes and all(ax.get_ylim()[0] == 0 for ax in kl_axes)


def test_recipe_hollow_markers_follow_the_paired_test(tmp_path):
    """With per-item results (SmolLM2's committed report), a deployed model is hollow exactly when the
    paired interval of its difference to its bar to beat holds zero."""
    from quantbench.experiment import requantize_targets
    from quantbench.report import paired

    shutil.copytree(ROOT / "results" / "reference" / "cpu" / "smollm2-135m" / "records", tmp_path / "records")
    shutil.copytree(ROOT / "results" / "reference" / "cpu" / "smollm2-135m" / "lm_eval", tmp_path / "lm_eval")
    exp = validation.build(yaml.safe_load((ROOT / COMMITTED["smollm2-135m"]).read_text()), cuda_available=True)
    paths = [p for p in record_paths(exp, str(tmp_path)) if Path(p).exists()]
    records = load_records(paths)
    data = figures.inputs(records, report_params(exp), paired.items_beside(paths, records))
    (r,) = data.params["recipes"]
    trained = f"{r['finetune_on']}+lora"
    expected = set()
    for t in requantize_targets(r):
        for k in r["merge_into"]:
            v = f"{trained}+merge-{k}+{t}"
            res = paired.compare_items(data.items[v], data.items[t], sorted(data.items[t]["tasks"]))
            if res["low"] <= 0 <= res["high"]:
                expected.add(round(float(data.quality.set_index("variant").at[v, "Average"]), 6))
    fig, _ = figures.draw("recipe_kl", data)
    ax = next(a for a in fig.axes if a.get_title().startswith("Task average"))
    hollow = {round(float(line.get_ydata()[0]), 6) for line in ax.lines
              if line.get_marker() not in (None, "None", "") and line.get_markerfacecolor() == "none"}
    assert hollow == expected and len(expected) == 1  # the fp merge's GPTQ deploy, -1.21 (-2.63 to 0.08)


def _unnamed(fig, panels):
    """The points of labels.place's panels that carry neither their name nor, beside them, the number
    the figure's key gives their name."""
    key = {}
    for lg in fig.findobj(Legend):
        for t in lg.get_texts():
            number, _, name = t.get_text().partition("  ")
            if number.isdigit():
                key[name] = number
    missing = []
    for i, (ax, points) in enumerate(panels):
        shown = {(tuple(t.xy), t.get_text()) for t in ax.texts if t.get_gid() == "point-label" and t.get_visible()}
        missing += [(i, p.name) for p in points
                    if ((p.x, p.y), p.name) not in shown and ((p.x, p.y), key.get(p.name)) not in shown]
    return missing


def test_every_crowded_point_gets_its_name_or_a_key_number():
    """A crowd of long names in a small panel: some names find no place and are numbered in a key;
    the key then narrows the panel and its numbers take room, so names that had a place before may
    find none beside them. Each of those gets a number too, rather than nothing."""
    from quantbench.report import labels

    fig, axes = style.figure(1, 1, panel=(3, 2.5))
    ax = axes[0][0]
    look = style.look("other", None)
    points = [labels.Point(float(x), float(y), f"long-scheme-{i}", look)
              for i, (x, y) in enumerate(itertools.product(range(4), range(3)))]
    for p in points:
        ax.plot([p.x], [p.y], look.marker, color=look.color)
    ax.set_xlim(-0.5, 3.5)
    ax.set_ylim(-0.5, 2.5)
    labels.place(fig, [(ax, points)])
    fig.canvas.draw()
    assert any(lg.get_texts()[0].get_text()[0].isdigit() for lg in fig.findobj(Legend))  # crowded: a key
    assert not _unnamed(fig, [(ax, points)])


def test_every_point_of_the_quality_figure_is_named_or_numbered(committed):
    """Each marker drawn in the quality panels has a label at its point: its name, or a number the key
    names (the committed SmolLM2 report once left AWQ, NF4 and bnb int8 bare in the task panel)."""
    fig, _ = figures.draw("quality_vs_memory", committed)
    key = {t.get_text().partition("  ")[0] for lg in fig.findobj(Legend) for t in lg.get_texts()}
    for ax in fig.axes:
        drawn = {(float(x), float(y)) for line in ax.lines if line.get_marker() not in (None, "None", "", "_")
                 for x, y in line.get_xydata()}
        shown = {tuple(map(float, t.xy)): t.get_text() for t in ax.texts if t.get_gid() == "point-label"}
        bare = sorted(xy for xy in drawn if xy not in shown)
        assert not bare, f"{ax.get_title()}: points with neither name nor number: {bare}"
        assert all(text in key for text in shown.values() if text.isdigit())


def test_a_llama_cpp_row_without_measured_peak_memory_draws_no_bar_and_both_say_why(tmp_path):
    """A llama.cpp model on a CUDA run: its records mark peak memory not measured (quantbench.memory);
    the memory figure draws no peak bar for it and its caption names it, the inference table says why."""
    import json

    from quantbench import memory
    from quantbench.report import markdown
    from quantbench.report.figures import speed

    shutil.copytree(ROOT / "results/reference/cpu/smollm2-135m/records", tmp_path / "records")
    path = tmp_path / "records/benchmark/gguf-q4_k_m.json"
    rec = json.loads(path.read_text())
    why = memory.unmeasured_on_cuda("llama.cpp", {"n_gpu_layers": -1, "process": "worker"})
    rec["metrics"] = memory.mark_unmeasured(rec["metrics"], why)
    rec["cells"] = [memory.mark_unmeasured(c, why) if "peak_memory_mb" in c else c for c in rec["cells"]]
    path.write_text(json.dumps(rec))
    exp = validation.build(yaml.safe_load((ROOT / "config/smollm2.yaml").read_text()), cuda_available=True)
    data = figures.inputs(load_records([p for p in record_paths(exp, str(tmp_path)) if Path(p).exists()]),
                          report_params(exp))
    row = data.summary.set_index("variant").loc["gguf-q4_k_m"]
    assert pd.isna(row.peak_memory_mb) and data.summary.peak_memory_mb.notna().sum() > 10
    _, caption = speed.memory_per_variant(data)
    assert "No peak bar for gguf-q4_k_m: not measured" in caption
    text = "".join(markdown.inference_section(data.summary, data.bench, {"new_tokens": [32]}))
    assert "peak_memory_mb – for gguf-q4_k_m: not measured" in text
