"""What a detector reports: which detector, and where. Never the matched text, so a finding can be logged,
stored and shown to an operator as it is."""

from typing import NamedTuple


class Finding(NamedTuple):
    detector: str  # a stable name, e.g. "card", "secret.aws_access_key" (see agents.guards.DETECTORS)
    start: int  # offsets in the text that was scanned, end exclusive
    end: int

    @property
    def group(self) -> str:
        """The family of the detector ("secret" for "secret.aws_access_key"): what its placeholder names."""
        return self.detector.partition(".")[0]


def resolve(findings, rank) -> list[Finding]:
    """Overlapping findings resolved: among findings that overlap, taken in order of `rank(finding)` (highest
    first), a finding is kept when it overlaps none already kept. Returned in text order.

    Findings are first cut into clusters of overlapping ones (nearly always a single finding), so a text with
    a hundred thousand findings costs a sort, not a comparison of every pair."""
    ordered = sorted(findings, key=lambda f: (f.start, f.end))
    kept: list[Finding] = []
    cluster: list[Finding] = []
    cluster_end = -1
    for finding in ordered:
        if finding.start >= cluster_end and cluster:
            kept.extend(_resolve_cluster(cluster, rank))
            cluster = []
        cluster.append(finding)
        cluster_end = max(cluster_end, finding.end) if len(cluster) > 1 else finding.end
    if cluster:
        kept.extend(_resolve_cluster(cluster, rank))
    return kept


def _resolve_cluster(cluster: list[Finding], rank) -> list[Finding]:
    if len(cluster) == 1:
        return cluster
    chosen: list[Finding] = []
    for finding in sorted(cluster, key=rank, reverse=True):
        if all(finding.end <= other.start or other.end <= finding.start for other in chosen):
            chosen.append(finding)
    chosen.sort(key=lambda f: (f.start, f.end))
    return chosen
