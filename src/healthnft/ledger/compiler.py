"""Compile the Vyper contracts offline, once per source version.

Why a cache: compiling takes ~1 s per contract, and every home, test and
benchmark deploys the same sources. Artifacts are keyed by the source text,
the compiler version and the EVM version, so an edited contract or another
target (ganache needs ``shanghai``) recompiles by itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

CONTRACTS_DIR = Path(__file__).parent / "contracts"
DEFAULT_EVM_VERSION = "prague"


@dataclass(frozen=True)
class CompiledContract:
    """ABI and deployment bytecode of one contract."""

    name: str
    abi: list
    bytecode: bytes


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "healthnft" / "contracts"


def compile_contract(
    name: str, evm_version: str = DEFAULT_EVM_VERSION, source_dir: Path = CONTRACTS_DIR
) -> CompiledContract:
    """Return the compiled contract ``name`` (``<name>.vy`` in ``source_dir``)."""
    import vyper

    path = source_dir / f"{name}.vy"
    source = path.read_text()
    key = hashlib.sha256(
        f"{vyper.__version__}|{evm_version}|{name}|".encode() + source.encode()
    ).hexdigest()[:24]
    cached = _cache_dir() / f"{name}-{key}.json"
    if cached.exists():
        data = json.loads(cached.read_text())
        return CompiledContract(name, data["abi"], bytes.fromhex(data["bytecode"]))

    from vyper.cli.vyper_compile import get_search_paths
    from vyper.compiler import compile_code
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.compiler.settings import Settings

    out = compile_code(
        source,
        contract_path=path.name,
        resolved_path=path,
        input_bundle=FilesystemInputBundle(get_search_paths([str(source_dir)])),
        output_formats=["abi", "bytecode"],
        settings=Settings(evm_version=evm_version),
    )
    bytecode = bytes.fromhex(out["bytecode"].removeprefix("0x"))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"abi": out["abi"], "bytecode": bytecode.hex()}))
    tmp.replace(cached)
    return CompiledContract(name, out["abi"], bytecode)
