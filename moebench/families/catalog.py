"""The model catalog: architectures of real MoE models, read from ``data/models.toml``.

Each row gives the MoE structure (layers, routed and shared experts, Top-K) and the sizes a
placement instance needs (hidden and expert intermediate size), with the config.json it was
copied from. Expert sizes in MB are derived here, never stored:

    size = mlp_matrices * hidden * expert_inter * bytes_per_weight / 1e6

with 2 bytes per weight for bf16 and 0.5 for int4. Shared experts run on every token and stay
on the user device, so they are reported (:attr:`ModelSpec.shared_mb`) but never placed.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

from moebench.errors import InputError

#: Bytes per weight of the two storage formats every row reports.
BYTES_PER_WEIGHT: dict[str, float] = {"bf16": 2.0, "int4": 0.5}


@dataclass(frozen=True)
class ModelSpec:
    """One catalog row (see ``data/models.toml`` for the meaning of each field)."""

    name: str
    hf_repo: str
    config_url: str
    config_fields: str
    layers_total: int
    moe_layers: int
    routed_experts: int
    shared_experts: int
    shared_inter: int
    K: int
    hidden: int
    expert_inter: int
    mlp_matrices: int
    native_format: str
    native_bits: float
    traces: str
    verified: str
    notes: str

    @property
    def expert_params(self) -> int:
        """Weights of one routed expert (biases ignored)."""
        return self.mlp_matrices * self.hidden * self.expert_inter

    def expert_mb(self, bytes_per_weight: float) -> float:
        """Size of one routed expert in MB (10^6 bytes) at ``bytes_per_weight``."""
        return self.expert_params * float(bytes_per_weight) / 1e6

    @property
    def expert_mb_bf16(self) -> float:
        """Routed expert size in MB, bf16."""
        return self.expert_mb(BYTES_PER_WEIGHT["bf16"])

    @property
    def expert_mb_int4(self) -> float:
        """Routed expert size in MB, int4 (scales ignored)."""
        return self.expert_mb(BYTES_PER_WEIGHT["int4"])

    @property
    def native_mb(self) -> float:
        """Routed expert size in MB in the checkpoint's own format (e.g. MXFP4 for GPT-OSS)."""
        return self.expert_mb(self.native_bits / 8.0)

    @property
    def expert_flops(self) -> float:
        """FLOPs of one token through one routed expert (2 per weight)."""
        return 2.0 * self.expert_params

    def shared_mb(self, bytes_per_weight: float = 2.0) -> float:
        """Size in MB of the shared experts of one layer (they stay on the device)."""
        return self.mlp_matrices * self.hidden * self.shared_inter * float(bytes_per_weight) / 1e6

    def routed_total_mb(self, bytes_per_weight: float = 2.0) -> float:
        """Size in MB of all routed experts of all MoE layers."""
        return self.moe_layers * self.routed_experts * self.expert_mb(bytes_per_weight)

    def to_row(self) -> dict[str, Any]:
        """The row with the derived sizes added (JSON-ready)."""
        row = asdict(self)
        row.update(
            expert_mb_bf16=round(self.expert_mb_bf16, 4),
            expert_mb_int4=round(self.expert_mb_int4, 4),
            native_mb=round(self.native_mb, 4),
            shared_mb_bf16=round(self.shared_mb(2.0), 4),
            routed_total_gb_bf16=round(self.routed_total_mb(2.0) / 1e3, 3),
        )
        return row


#: Every field of a row and the type it must have (``native_bits`` may be written as an integer).
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    f.name: {"str": str, "int": int, "float": (int, float)}[str(f.type)] for f in fields(ModelSpec)
}


def _check_row(row: dict[str, Any], i: int) -> ModelSpec:
    where = f"models.toml: model[{i}]"
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise InputError(f"missing field(s) {', '.join(missing)}", where=where)
    extra = sorted(set(row) - set(_REQUIRED))
    if extra:
        raise InputError(f"unknown field(s) {', '.join(extra)}", where=where)
    for key, typ in _REQUIRED.items():
        if not isinstance(row[key], typ) or isinstance(row[key], bool):
            raise InputError(f"field {key} must be {typ}", where=where)
    spec = ModelSpec(**{**row, "native_bits": float(row["native_bits"])})
    positive = ("layers_total", "moe_layers", "routed_experts", "K", "hidden", "expert_inter", "mlp_matrices")
    if any(getattr(spec, k) < 1 for k in positive) or spec.shared_experts < 0 or spec.shared_inter < 0:
        raise InputError("sizes must be positive", where=where)
    if spec.moe_layers > spec.layers_total or spec.K > spec.routed_experts:
        raise InputError("moe_layers <= layers_total and K <= routed_experts are required", where=where)
    if (spec.shared_experts == 0) != (spec.shared_inter == 0):
        raise InputError("shared_experts and shared_inter must be both zero or both positive", where=where)
    return spec


@cache
def catalog() -> dict[str, ModelSpec]:
    """Every catalog model by name, in file order."""
    text = resources.files("moebench.families").joinpath("data/models.toml").read_text(encoding="utf-8")
    rows = tomllib.loads(text).get("model", [])
    out: dict[str, ModelSpec] = {}
    for i, row in enumerate(rows):
        spec = _check_row(row, i)
        if spec.name in out:
            raise InputError(f"model {spec.name!r} listed twice", where=f"models.toml: model[{i}]")
        out[spec.name] = spec
    return out


def get_model(name: str) -> ModelSpec:
    """The catalog row ``name``.

    Raises
    ------
    InputError
        For a name not in the catalog.
    """
    models = catalog()
    if name not in models:
        raise InputError(f"unknown model {name!r} (catalog: {', '.join(models)})", where="model")
    return models[name]
