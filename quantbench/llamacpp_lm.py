"""lm-evaluation-harness scoring through llama.cpp's own logits.

lm-eval 0.4.13's `gguf` model asks a llama.cpp server for `token_logprobs` and fails on
loglikelihood requests (lm-eval issues #2525 and #2213). This adapter scores in-process instead,
and tokenizes exactly as lm-eval's HFLM does for the other variants (its tok_encode, prefix token
and end-of-text token are borrowed), so a GGUF model answers the same token sequences."""
from __future__ import annotations

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from quantbench.llamacpp import LlamaCppModel


def _log_softmax(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float64)
    top = rows.max(axis=-1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=-1, keepdims=True))


class LlamaCppLM(TemplateLM):
    tok_encode = HFLM.tok_encode
    eot_token_id = HFLM.eot_token_id
    prefix_token_id = HFLM.prefix_token_id
    custom_prefix_token_id = None
    add_bos_token = False  # HFLM's default for causal models
    max_gen_toks = 256

    def __init__(self, model: LlamaCppModel, tokenizer, max_length: int | None = None):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.max_length = min(max_length or model.n_ctx, model.n_ctx) - 1  # one slot for the last token

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        # Multiple-choice requests share their context: sorted by input, each distinct input runs once.
        keyed = []
        for i, (_, context, continuation) in enumerate(requests):
            whole = (context + continuation)[-(self.max_length + 1):]
            keyed.append(((tuple(whole[:-1]), len(continuation)), i, continuation))
        keyed.sort(key=lambda k: k[0])
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        last_key, logprobs = None, None
        for key, i, continuation in tqdm(keyed, desc="llama.cpp loglikelihood", disable=disable_tqdm, mininterval=2):
            if key != last_key:
                inputs, n = key
                logprobs = _log_softmax(self.model.logits(list(inputs), keep_last=n))
                last_key = key
            picked = logprobs[np.arange(len(continuation)), continuation]
            greedy = bool((logprobs.argmax(-1) == np.asarray(continuation)).all())
            results[i] = (float(picked.sum()), greedy)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval import utils

        out = []
        for (text,) in tqdm([r.args for r in requests], desc="llama.cpp rolling", disable=disable_tqdm):
            windows = map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            scored = self._loglikelihood_tokens([(None, ctx, cont) for ctx, cont in windows], disable_tqdm=True)
            out.append(sum(ll for ll, _ in scored))
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for context, gen_kwargs in tqdm([r.args for r in requests], desc="llama.cpp generate", disable=disable_tqdm):
            until = gen_kwargs.get("until") or [self.tokenizer.decode([self.eot_token_id])]
            until = [until] if isinstance(until, str) else until
            limit = gen_kwargs.get("max_gen_toks", self.max_gen_toks)
            prompt = self.tok_encode(context)[-(self.max_length - limit):]
            text = self.tokenizer.decode(self.model.greedy(prompt, limit), skip_special_tokens=False)
            for stop in until:
                text = text.split(stop)[0]
            out.append(text)
        return out
