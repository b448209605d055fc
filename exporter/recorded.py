"""Names of the series the Prometheus rules record (alerts/catalog/cluster.py) and the
`fleet` command reads (exporter/report/fleet.py): the contract between the two, written
once."""

from __future__ import annotations

#: {requirement}: 1 met, 0 not; absent when unknown or (observed present) not applicable
CLUSTER_MET = "kubev:cluster_requirement_met"
#: {requirement}: the value the cluster verdict is made on
CLUSTER_OBSERVED = "kubev:cluster_requirement_observed"
#: {node, requirement}: per node, as the cluster (kube-state-metrics) sees it
NODE_MET = "kubev:node_cluster_requirement_met"
NODE_OBSERVED = "kubev:node_cluster_requirement_observed"
#: {storageclass, provisioner, complete, default, virtdefault, rwx, smartclone, degraded}:
#: CDI's StorageProfile of the class a VM disk gets when it names none
VM_STORAGE_CLASS = "kubev:vm_storageclass:info"
#: {node}: 1 when a kubev-node-exporter reports the node, 0 when none does
EXPORTER_REPORTING = "kubev:node_exporter_reporting"

ALL = (CLUSTER_MET, CLUSTER_OBSERVED, NODE_MET, NODE_OBSERVED, VM_STORAGE_CLASS, EXPORTER_REPORTING)
