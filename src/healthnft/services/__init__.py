"""The one door: every participant action, one module per concern.

Adapters (the CLI, the web API, later the node-to-node API) parse their input,
call one function here and render its result; none of them reaches the domain
layers (records, vault, ledger, minting, wallet) on its own. A service checks
the caller's right (owner, grantee, issuer) before it acts, so a rule written
here holds for every door.
"""
