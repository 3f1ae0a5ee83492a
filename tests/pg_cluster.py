"""The tests' throwaway PostgreSQL cluster: benchmarks/pg_cluster.py (the scale bench starts one too)."""
from __future__ import annotations

from benchmarks.pg_cluster import Cluster, bin_dir, start_cluster

__all__ = ["Cluster", "bin_dir", "start_cluster"]
