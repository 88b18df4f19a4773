#!/usr/bin/env bash
# vLLM's wheel without the native files an offline `vllm.LLM(...).generate()` of a dense (non-MoE) model
# on an H100 (SM90) under CPython 3.12 never loads, for carrying to an offline GPU node in fewer parts
# (304 MB -> 116 MB). Each is loaded only inside a try/except or only by another feature; the cited
# lines are in the wheel's vllm/ (checked on vllm 0.26.0 only):
#   vllm_flash_attn/_vllm_fa2_C.abi3.so (FlashAttention-2): vllm_flash_attn/flash_attn_interface.py:13
#     `try: from . import _vllm_fa2_C` / `except ImportError` -> FA2_AVAILABLE=False; on SM90
#     v1/attention/backends/fa_utils.py takes FA3 (_vllm_fa3_C, kept), FA2 only for ALiBi, a turboquant_*
#     kv_cache_dtype (engine/arg_utils.py:2263) or attention_config.flash_attn_version=2
#   _moe_C_stable_libtorch.abi3.so (Mixture-of-Experts kernels): platforms/cuda.py:227 `with
#     contextlib.suppress(ImportError): import vllm._moe_C_stable_libtorch`; its ops are called only
#     from model_executor/layers/fused_moe/ (and MoE LoRA)
#   vllm-rs (Rust HTTP frontend binary): only envs.py:571 names it, when VLLM_USE_RUST_FRONTEND=1 (serve)
#   third_party/deep_gemm/_C.cpython-3{10,11,13,14}-*.so: CPython 3.12 imports only the cpython-312 one
# The wheel's RECORD loses their lines, so pip installs it. Fails, naming the file, if one is absent.
#
#     bash tools/gpu/slim-vllm-wheel.sh IN.whl OUT_DIR      (writes OUT_DIR/<IN's file name>)
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bash tools/gpu/slim-vllm-wheel.sh IN.whl OUT_DIR" >&2; exit 2; }
[ -f "$1" ] || { echo "no wheel at $1" >&2; exit 1; }
mkdir -p "$2"
out="$2/$(basename "$1")"
trap 'rm -f "$out.part"' EXIT
[ "$(realpath "$1")" != "$(realpath -m "$out")" ] || { echo "OUT_DIR must not hold IN.whl" >&2; exit 1; }
python3 - "$1" "$out" <<'EOF'
import sys, zipfile
src, dst = sys.argv[1:]
dg = "vllm/third_party/deep_gemm/_C.cpython-{}-x86_64-linux-gnu.so"
drop = {"vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so", "vllm/_moe_C_stable_libtorch.abi3.so", "vllm/vllm-rs",
        *(dg.format(v) for v in (310, 311, 313, 314))}
keep = {"vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so", dg.format(312)}
with zipfile.ZipFile(src) as zin:
    names = set(zin.namelist())
    missing = sorted((drop | keep) - names)
    if missing:
        sys.exit(f"{src} lacks {', '.join(missing)}: not the vllm 0.26.0 wheel this was checked on")
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))
    with zipfile.ZipFile(dst + ".part", "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info)
            if info.filename == record:
                lines = data.decode().splitlines(keepends=True)
                data = "".join(l for l in lines if l.split(",", 1)[0] not in drop).encode()
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
EOF
mv "$out.part" "$out"
ls -la "$1" "$out"
