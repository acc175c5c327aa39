"""deploy/besu/: the example configuration says what docs/besu.md says it says."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from eth_utils import is_address

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "besu"


def test_validator_config_keeps_rpc_local_and_permissioning_on():
    config = tomllib.loads((DEPLOY / "config.toml").read_text())
    assert config["rpc-http-host"] == "127.0.0.1"
    assert config["rpc-http-api"] == ["ETH", "NET", "QBFT", "WEB3"]
    assert config["min-gas-price"] == 0
    assert config["discovery-enabled"] is False
    assert config["permissions-nodes-config-file-enabled"] is True
    assert config["permissions-accounts-config-file-enabled"] is True


def test_account_allowlist_has_the_genesis_validators_and_admin():
    perms = tomllib.loads((DEPLOY / "permissions_config.toml").read_text())
    accounts = {a.lower() for a in perms["accounts-allowlist"]}
    assert all(is_address(a) for a in accounts)
    genesis = json.loads((DEPLOY / "genesis.example.json").read_text())
    assert {"0x" + a for a in genesis["alloc"]} <= accounts
    assert all(n.startswith("enode://") for n in perms["nodes-allowlist"])


def test_compose_pins_a_besu_with_p2p_tls_and_takes_secrets_from_files():
    compose = (DEPLOY / "compose.yaml").read_text()
    env = (DEPLOY / "env.example").read_text()
    assert "hyperledger/besu:24.10.0" in compose and "hyperledger/besu:24.10.0" in env
    assert "--Xp2p-tls-enabled=true" in compose
    ports = re.findall(r'^\s*- "([^"]+)"', compose, re.M)
    assert ports and not any("8545" in p for p in ports)  # RPC not published
    for service in ("besu:", "healthnft-node:", "custodian:"):
        assert f"\n  {service}" in compose
    assert "custodian serve" in compose and "init --rpc http://127.0.0.1:8545" in compose
    # No secret value in the committed files: passphrases come from /run/secrets.
    assert not re.search(r"(?i)(passphrase|password|private_key)\s*[:=]\s*\S", env)
    assert 'HEALTHNFT_PASSPHRASE="$$(cat /run/secrets/' in compose
