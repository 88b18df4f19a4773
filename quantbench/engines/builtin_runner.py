"""quantbench's own decoders as an engine (quantbench.engines.cells), so that an external engine's cells
have ours beside them at the same lengths: the variant loaded as the benchmark loads it, generating with
one of the benchmark's modes (`benchmark.engine_cells.builtin_mode`: eager, static, or a CUDA-graph decoder
such as fused)."""
from __future__ import annotations

import torch

from quantbench import timing
from quantbench.benchmark import DECODER_MODES, generate_call
from quantbench.decoders import DECODERS
from quantbench.loading import load
from quantbench.modelio import RunContext


class BuiltinRunner:
    name = "builtin"

    def __init__(self, folder: str, ctx: RunContext, mode: str, max_len: int):
        self.loaded, tokenizer, self.load_info = load(folder, ctx, adapter=None)
        self.model, self.device, self.mode = self.loaded.model, ctx.device, mode
        self.vocab_size = self.model.config.vocab_size
        self.max_batch = self.loaded.batch_limit or 2**31
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        # a CUDA-graph decoder captures one step per batch size on its first call there (the cells' warm-up)
        self.decoder = DECODERS[mode](self.model, max_len) if mode in DECODER_MODES else None

    def generate(self, rows: list[list[int]], new_tokens: int) -> list[int]:
        ids = torch.tensor(rows, device=self.device)
        call = generate_call(self.model, self.mode, ids, torch.ones_like(ids), new_tokens, True, self.pad,
                             len(rows[0]), self.decoder)
        call()  # it checks that every row got new_tokens (generation never stops early here)
        timing._sync(self.device)
        return [new_tokens] * len(rows)

    def info(self) -> dict:
        return {"engine": self.name, "mode": self.mode, **self.load_info, **(self.decoder.info if self.decoder else {})}

    def close(self) -> None:
        self.model = self.decoder = None
