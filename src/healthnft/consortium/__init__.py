"""A consortium: a network of separate homes, each its own process, on real EVM nodes.

Between the services (one call per action) and a single home (:mod:`healthnft.network`):
this package composes several homes, the chain's validators and the node services.

- :mod:`.membership`  the network file (``network.json``: chain id, RPC URLs, contracts;
                      never a secret), joining it (a new home and its signed membership
                      application, also shown as a ``healthnft:`` link: the member's
                      card) and admitting an applicant (on chain, by the admin)
- :mod:`.processes`   detached child processes: started with their log in their home,
                      recorded with their start time (a recycled pid is never signalled),
                      stopped with SIGTERM, then SIGKILL, in bounded time
- :mod:`.council`     admitting an institution by k of the founding council (each step a
                      proposal), and handing a network over to its council
- :mod:`.local`       ``consortium up|status|down|admit``: validators (geth Clique), the
                      admin home, one home and node service per founding institution, on
                      loopback, the network then handed to the founders' council

Who may admit a member: the admin key while no council owns the network
(:func:`.membership.admit`); then k of the council (:func:`.council.admit_by_council`),
and for patients only, the enrolment office the council names (the registrar role).
"""

from healthnft.consortium.membership import (
    APPLICATION_FILE,
    Admitted,
    Card,
    Joined,
    admit,
    application_terms,
    card,
    join,
    network_document,
    read_application,
    read_json_file,
)

__all__ = ["APPLICATION_FILE", "Admitted", "Card", "Joined", "admit", "application_terms", "card",
           "join", "network_document", "read_application", "read_json_file"]  # fmt: skip
