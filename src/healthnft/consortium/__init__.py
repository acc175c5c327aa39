"""A consortium: a network of separate homes, each its own process, on real EVM nodes.

Between the services (one call per action) and a single home (:mod:`healthnft.network`):
this package composes several homes, the chain's validators and the node services.

- :mod:`.membership`  the network file (``network.json``: chain id, RPC URLs, contracts;
                      never a secret), joining it (a new home and its signed membership
                      application) and admitting an applicant (on chain, by the admin)
- :mod:`.processes`   detached child processes: started with their log in their home,
                      recorded with their start time (a recycled pid is never signalled),
                      stopped with SIGTERM, then SIGKILL, in bounded time
- :mod:`.local`       ``consortium up|status|down``: validators (geth Clique), the admin
                      home, one home and node service per founding institution, on loopback

Who may admit a member is one function (:func:`.membership.admit`): today the network's
admin key; governance (k of n founding institutions) replaces it there.
"""

from healthnft.consortium.membership import (
    APPLICATION_FILE,
    Admitted,
    Joined,
    admit,
    join,
    network_document,
    read_json_file,
)

__all__ = ["APPLICATION_FILE", "Admitted", "Joined", "admit", "join", "network_document",
           "read_json_file"]  # fmt: skip
