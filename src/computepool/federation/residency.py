"""Residency across clusters: the ticket a start carries, and the agent's own judgement.

The control plane decides where a job may run (the residency check masks flavors by region,
as it does for nodes); each start to a cluster carries a ``Ticket``: the verdict for the
cluster's region, the job's datasets and the approvals the verdict relied on. The agent, the
second line of defence, judges the datasets again with the same pure code
(``admission/judge.py``), its own rulebook and its own region data, and refuses a start that
its jurisdiction does not allow, whatever the ticket says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from computepool.admission.approvals import Approval, ApprovalBook, PersonCounters, TimeBase
from computepool.admission.judge import ProfileVerdict, State, judge_profile
from computepool.admission.rulebook import Rulebook
from computepool.federation.protocol import ApprovalOut, DatasetOut, Ticket, finite_or_none
from computepool.model.job import Dataset


def approval_out(a: Approval) -> ApprovalOut:
    return ApprovalOut(
        id=a.id,
        kind=a.kind,
        handler=a.handler,
        origin=a.origin,
        data_class=a.data_class,
        to=list(a.to),
        datasets=list(a.datasets),
        valid_from=finite_or_none(a.valid_from),
        expires=finite_or_none(a.expires),
    )


def approval_in(a: ApprovalOut) -> Approval:
    return Approval(
        id=a.id,
        kind=a.kind,
        handler=a.handler,
        origin=a.origin,
        data_class=a.data_class,
        to=tuple(a.to),
        datasets=tuple(a.datasets),
        valid_from=-math.inf if a.valid_from is None else a.valid_from,
        expires=math.inf if a.expires is None else a.expires,
    )


def make_ticket(
    datasets: Sequence[Dataset],
    region: str,
    jurisdiction: str,
    verdict: ProfileVerdict,
    approvals: ApprovalBook,
    at: float,
) -> Ticket:
    """The ticket of a start in ``region`` from the control plane's ``verdict``."""
    used = set(verdict.approvals)
    return Ticket(
        region=region,
        jurisdiction=jurisdiction,
        allowed=verdict.allowed,
        rules=[r for r in (*verdict.allowed_by, verdict.forbidden_by) if r],
        reason=verdict.reason[:1000],
        datasets=[DatasetOut(**asdict(d)) for d in datasets],
        approvals=[approval_out(a) for a in approvals.approvals if a.id in used],
        at=at,
    )


def recheck(
    ticket: Ticket | None,
    regions: Mapping[str, str],
    node_regions: Sequence[str],
    rulebook: Rulebook,
) -> str:
    """Why this cluster refuses a start ("" when it may run it). ``regions``: region name ->
    jurisdiction, the agent's own data; ``node_regions``: the regions of the nodes the start
    was placed on (all of them are judged)."""
    if ticket is None:
        return "no residency verdict came with the start"
    datasets = tuple(Dataset(**d.model_dump()) for d in ticket.datasets)
    state = State(
        ApprovalBook(tuple(approval_in(a) for a in ticket.approvals)),
        PersonCounters(),
        ticket.at,
        TimeBase(),
    )
    for region in dict.fromkeys(node_regions):
        jur = regions.get(region)
        if jur is None:
            return f"region {region!r} is not one of this cluster's"
        if ticket.region != region or ticket.jurisdiction != jur:
            return (
                f"the verdict is for {ticket.region!r} ({ticket.jurisdiction}), "
                f"the workers are in {region!r} ({jur})"
            )
        if not ticket.allowed:
            return f"the verdict itself refuses {jur}: {ticket.reason}"
        v = judge_profile(datasets, region, regions, rulebook, state)
        if not v.allowed:
            return f"residency: {v.reason}"
    return ""
