"""GPU energy of one measurement, from NVML's total-energy counter (millijoules since the driver
loaded; Volta and newer). The counter covers the whole board, so it is only meaningful while the
measured cell is the only work on the GPU, which is how benchmarks run.

Where the counter cannot be read (no NVML library, no GPU, an older GPU, a virtualised device that
hides it) the reason is kept and reported in place of the numbers, never a zero.
"""
from __future__ import annotations


class EnergyMeter:
    def __init__(self, device: str):
        self.handle, self.error = None, None
        if device != "cuda":
            self.error = f"no energy counter on {device}"
            return
        try:
            import pynvml
            import torch

            pynvml.nvmlInit()
            self._nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(_nvml_index(torch.cuda.current_device()))
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)  # fails here if unsupported
        except Exception as exc:  # noqa: BLE001 - any failure means "no reading", with its reason
            self.handle, self.error = None, f"{type(exc).__name__}: {exc}"[:200]

    def read_j(self) -> float | None:
        if self.handle is None:
            return None
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3

    def cell_fields(self, joules: float | None, seconds: float, calls: int) -> dict:
        """Record fields for `calls` timed calls that took `seconds` of wall time together."""
        if joules is None:
            return {"energy_error": self.error}
        return {"energy_j_per_call": joules / calls, "avg_power_w": joules / seconds if seconds > 0 else None}


def _nvml_index(cuda_index: int) -> int:
    """NVML numbers GPUs by PCI order, CUDA by CUDA_VISIBLE_DEVICES (and, unless told, by speed):
    map through the first visible device's entry when the variable names plain indices."""
    import os

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if ids and all(v.isdigit() for v in ids) and cuda_index < len(ids):
        return int(ids[cuda_index])
    return cuda_index
