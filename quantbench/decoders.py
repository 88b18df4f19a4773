"""The static-KV-cache decode loops behind the generate modes static, compiled, graphs and fused
(quantbench.benchmark times them): a StaticDecoder steps one token at a time; CompiledDecoder
compiles the step (cudagraph trees), GraphDecoder captures it whole into one CUDA graph per batch
size, FusedDecoder captures inductor's fused step. StepClock times decode steps with CUDA events."""
from __future__ import annotations

import logging

import torch

from quantbench import graph_capture
from quantbench.unsupported import Unsupported


class StepClock:
    """A logits processor that records a CUDA event at every decode step and changes nothing.

    generate calls logits processors once per new token, after that token's forward pass: the
    first event follows the prefill, the last follows the last forward pass."""

    def __init__(self):
        self.events: list = []

    def __call__(self, input_ids, scores):
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        self.events.append(ev)
        return scores

    def decode_s(self) -> float | None:
        if len(self.events) < 2:
            return None
        self.events[-1].synchronize()
        return self.events[0].elapsed_time(self.events[-1]) / 1e3 / (len(self.events) - 1)


class StaticDecoder:
    """Greedy decoding over a static KV cache, one decode step at a time; subclasses make the step
    fast. One cache per batch size, sized for the longest generation of the grid, so every cell of
    a batch size shares one compiled step or captured graph (a new cache shape would need its own)."""

    def __init__(self, model, max_cache_len: int):
        from transformers import StaticCache

        self.model, self.max_cache_len, self.caches = model, max_cache_len, {}
        self._StaticCache = StaticCache
        self.patched: dict = {}  # what the decoder did to the model to make it fast

    @property
    def info(self) -> dict:
        """What goes into each row this decoder timed."""
        return self.patched

    def _compile(self, fn, mode: str, dynamic: bool | None = False):
        """torch.compile with Marlin made traceable first (quantbench.traceable_marlin)."""
        from quantbench import traceable_marlin

        self.patched = traceable_marlin.patch(self.model, self.model.dtype)
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        return torch.compile(fn, mode=mode, fullgraph=False, dynamic=dynamic)

    def _step(self, tok, pos, cache):
        out = self.model(input_ids=tok, past_key_values=cache, cache_position=pos, use_cache=True)
        return out.logits[:, -1, :].argmax(-1, keepdim=True)

    def step(self, tok, pos, cache):
        raise NotImplementedError

    def cache(self, batch: int, device):
        if batch not in self.caches:
            config = getattr(self.model, "config", None)
            self.caches[batch] = self._StaticCache(config=config, max_cache_len=self.max_cache_len)
        return self.caches[batch]

    def generate(self, ids, new_tokens: int):
        """Returns (tokens [batch, new_tokens], seconds per decode step from CUDA events)."""
        cache = self.cache(ids.shape[0], ids.device)
        prompt_len = ids.shape[1]
        if prompt_len + new_tokens > self.max_cache_len:
            raise ValueError(f"{prompt_len}+{new_tokens} tokens exceed the static cache ({self.max_cache_len})")
        positions = torch.arange(prompt_len + new_tokens, device=ids.device)
        with torch.inference_mode():
            cache.reset()  # its tensors were made under inference mode: only there can they be zeroed
            out = self.model(input_ids=ids, past_key_values=cache, cache_position=positions[:prompt_len],
                             use_cache=True, logits_to_keep=1)
            tok = out.logits[:, -1, :].argmax(-1, keepdim=True)
            tokens = [tok]
            first = torch.cuda.Event(enable_timing=True) if ids.is_cuda else None
            if first is not None:
                first.record()
            for i in range(new_tokens - 1):
                # clone: a graph's output buffer is overwritten by the next replay
                tok = self.step(tok, positions[prompt_len + i:prompt_len + i + 1], cache).clone()
                tokens.append(tok)
            step_s = None
            if first is not None and new_tokens > 1:
                last = torch.cuda.Event(enable_timing=True)
                last.record()
                last.synchronize()
                step_s = first.elapsed_time(last) / 1e3 / (new_tokens - 1)
        return torch.cat(tokens, dim=1), step_s


class _Messages(logging.Handler):
    """Keeps the distinct first lines of the warnings a library logger emits."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        line = record.getMessage().splitlines()[0][:300]
        if line not in self.lines:
            self.lines.append(line)


class CompiledDecoder(StaticDecoder):
    """The decode step torch.compile'd with mode="reduce-overhead": inductor fuses the small ops
    and replays the result as CUDA graphs. GPTQModel's Marlin GEMM is declared a custom op first
    (quantbench.traceable_marlin) so it no longer breaks the graph; kernels still opaque to dynamo
    (bitsandbytes int8's outlier search, exllama_v2's handle) break it into pieces, each with its
    own guards. Why inductor left a step without CUDA graphs, and how often dynamo compiled, go
    into every row: a compiled cell far slower than the captured one is otherwise unexplained."""

    _SKIP_LOGGER = "torch._inductor.cudagraph_utils.__cudagraphs"

    def __init__(self, model, max_cache_len: int):
        super().__init__(model, max_cache_len)
        self._skips = _Messages()
        logging.getLogger(self._SKIP_LOGGER).addHandler(self._skips)
        self._compiled = self._compile(self._step, "reduce-overhead")

    @property
    def info(self) -> dict:
        from torch._dynamo.utils import counters

        return {**self.patched, "cudagraph_skips": list(self._skips.lines),
                "dynamo_unique_graphs": counters["stats"].get("unique_graphs", 0),
                "dynamo_graph_breaks": sum(counters["graph_break"].values())}

    def step(self, tok, pos, cache):
        torch.compiler.cudagraph_mark_step_begin()
        return self._compiled(tok, pos, cache)


class GraphDecoder(StaticDecoder):
    """The eager decode step captured whole into one CUDA graph per batch size (torch.cuda.graph),
    no compiler: every kernel the step launches (custom ones too) is replayed with no host work.
    Capture fails on steps that synchronise with the host (bitsandbytes int8's outlier search);
    the cell then records that error."""

    def __init__(self, model, max_cache_len: int):
        super().__init__(model, max_cache_len)
        self.graphs: dict[int, tuple] = {}
        self.blocked = graph_capture.blocker(model)

    def _capture(self, tok, pos, cache):
        static_tok, static_pos = tok.clone(), pos.clone()
        # Warm-up on a side stream before capture (lazy allocations, cuBLAS workspaces, Triton
        # autotuning must not happen inside it). It writes this step's own K/V: the same values
        # the replay writes again.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step(static_tok, static_pos, cache)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._step(static_tok, static_pos, cache)
        return graph, static_tok, static_pos, static_out

    def step(self, tok, pos, cache):
        if self.blocked:
            # a capture would succeed and replay a step without these kernels: refuse, per cell
            raise Unsupported(f"excluded from CUDA graph capture: {self.blocked}")
        batch = tok.shape[0]
        if batch not in self.graphs:
            self.graphs[batch] = self._capture(tok, pos, cache)
        graph, static_tok, static_pos, static_out = self.graphs[batch]
        static_tok.copy_(tok)
        static_pos.copy_(pos)
        graph.replay()
        return static_out


class FusedDecoder(GraphDecoder):
    """inductor's fused decode step (torch.compile, default mode: no CUDA graphs of its own)
    captured into one CUDA graph per batch size by GraphDecoder: the fusion of the compiled mode
    without depending on whether cudagraph trees accept the step. GPTQModel's Marlin GEMM is a
    custom op (quantbench.traceable_marlin), so the compiled step has no break at it. The capture's
    warm-up runs on a side stream and compiles there; capture starts once compilation is done.

    Shapes are static at the first batch size and dynamic in the batch from the second on
    (dynamo's automatic dynamic shapes): two compilations cover batch 1, 4 and 16 instead of three,
    the largest part of a cell's cost at full depth. A model whose kernels a graph cannot hold
    (quantbench.graph_capture) is refused per cell, as in GraphDecoder: uncaptured, the step would
    time the host, not the kernels."""

    def __init__(self, model, max_cache_len: int):
        super().__init__(model, max_cache_len)
        self._fused = self._compile(super()._step, "default", dynamic=None)

    def _step(self, tok, pos, cache):
        return self._fused(tok, pos, cache)


DECODERS = {"compiled": CompiledDecoder, "graphs": GraphDecoder, "fused": FusedDecoder}
