"""Rules a schema does not see, for every rendered object of every variant (the chart's and
the kustomize manifests): what the API server's validation refuses beyond the OpenAPI
schema, and what this project promises about its pods (issues 12 and 13).

    violations(objects, allowed_resources=...) -> ["DaemonSet/x: ...", ...]

make generate refuses to write manifests that break one; the tests run them on every
render, and prove each rule catches what it is for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Obj = Mapping[str, Any]

#: what every node has; anything else (devices.kubevirt.io/kvm, nvidia.com/gpu) is an
#: extended resource a node may not offer, and a pod that asks for one stays Pending there
NODE_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
#: the fsync probe's directories: the only host paths a pod may write
PROBE_DIR = "/.kubev-node-exporter-pod"
#: host paths that hold the node's keys, kubelet's or the runtime's state or sockets:
#: never mounted, neither they nor a parent of them (the root itself included)
FORBIDDEN_HOST_PATHS = (
    "/etc/kubernetes",
    "/var/lib/kubelet/pki",
    "/var/lib/kubelet/pods",
    "/var/lib/kubelet/device-plugins",
    "/var/lib/kubelet/plugins_registry",
    "/var/lib/kubelet/pod-resources",
    "/var/lib/etcd/member",
    "/var/lib/containerd",
    "/run/containerd",
    "/var/run/containerd",
    "/run/crio",
    "/var/run/crio",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/var/run/dockershim.sock",
    "/run/k3s",
    "/root",
)
#: CAP_CHOWN alone: the init container that hands the probe directories over
ROOT_CAPABILITIES = frozenset({"CHOWN"})
RECURSIVE_READ_ONLY = ("Disabled", "IfPossible", "Enabled")


def pod_spec(obj: Obj) -> Mapping[str, Any] | None:
    if obj.get("kind") in ("DaemonSet", "Deployment", "StatefulSet", "Job", "ReplicaSet"):
        spec: Mapping[str, Any] = obj["spec"]["template"]["spec"]
        return spec
    if obj.get("kind") == "Pod":
        pod: Mapping[str, Any] = obj["spec"]
        return pod
    return None


def containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from pod.get("initContainers") or ()
    yield from pod.get("containers") or ()


def _under(path: str, parent: str) -> bool:
    """path is parent or below it (both normalised, absolute)."""
    parent = parent.rstrip("/") or "/"
    return path == parent or path.startswith(parent + "/") or parent == "/"


# --- the rules, each over one pod spec ----------------------------------------------


def privileged_escalation(pod: Mapping[str, Any]) -> Iterator[str]:
    """kubernetes pkg/apis/core/validation ValidateSecurityContext: "cannot set
    `allowPrivilegeEscalation` to false and `privileged` to true" (and CAP_SYS_ADMIN)."""
    for c in containers(pod):
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is False:
            where = f"container {c['name']}"
            if sc.get("privileged") is True:
                yield f"{where}: privileged: true with allowPrivilegeEscalation: false"
            added = (sc.get("capabilities") or {}).get("add") or ()
            if "CAP_SYS_ADMIN" in added:
                yield f"{where}: CAP_SYS_ADMIN with allowPrivilegeEscalation: false"


def extended_resources(pod: Mapping[str, Any], allowed: frozenset[str]) -> Iterator[str]:
    """A request for a resource the node may not have keeps the pod Pending on exactly
    that node (issue 12): only where the variant asks for it."""
    for c in containers(pod):
        resources = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for name in resources.get(kind) or {}:
                if name in NODE_RESOURCES or name.startswith("hugepages-") or name in allowed:
                    continue
                yield f"container {c['name']}: {kind} {name}: a node may not offer it"


def tolerates_no_schedule(pod: Mapping[str, Any]) -> Iterator[str]:
    """A node agent must run on every node: some toleration matches any NoSchedule taint
    (no key, operator Exists, effect NoSchedule or any)."""
    for t in pod.get("tolerations") or ():
        every_key = t.get("operator") == "Exists" and not t.get("key")
        if every_key and t.get("effect") in (None, "", "NoSchedule"):
            return
    yield "no toleration covers every NoSchedule taint (want {operator: Exists})"


def recursive_read_only(pod: Mapping[str, Any], required: bool) -> Iterator[str]:
    """validateMountRecursiveReadOnly: IfPossible/Enabled only with readOnly: true and
    mountPropagation None; and (ours) every read-only host mount asks for it."""
    host_paths = {v["name"] for v in pod.get("volumes") or () if "hostPath" in v}
    for c in containers(pod):
        for m in c.get("volumeMounts") or ():
            mode = m.get("recursiveReadOnly")
            where = f"container {c['name']}: mount {m['mountPath']}"
            if mode is not None and mode not in RECURSIVE_READ_ONLY:
                yield f"{where}: recursiveReadOnly {mode!r} is not one of {RECURSIVE_READ_ONLY}"
            if mode in ("IfPossible", "Enabled"):
                if not m.get("readOnly"):
                    yield f"{where}: recursiveReadOnly without readOnly: true"
                if m.get("mountPropagation") not in (None, "None"):
                    yield f"{where}: recursiveReadOnly with mountPropagation"
            elif required and m.get("readOnly") and m["name"] in host_paths:
                yield f"{where}: a read-only host path without recursiveReadOnly"


def propagation(pod: Mapping[str, Any]) -> Iterator[str]:
    """validateMountPropagation: Bidirectional only for privileged containers."""
    for c in containers(pod):
        privileged = (c.get("securityContext") or {}).get("privileged") is True
        for m in c.get("volumeMounts") or ():
            if m.get("mountPropagation") == "Bidirectional" and not privileged:
                yield f"container {c['name']}: Bidirectional propagation needs privileged"


def volumes_match(pod: Mapping[str, Any]) -> Iterator[str]:
    names = [v["name"] for v in pod.get("volumes") or ()]
    if len(names) != len(set(names)):
        yield "two volumes share a name"
    used = set()
    for c in containers(pod):
        paths = [m["mountPath"] for m in c.get("volumeMounts") or ()]
        if len(paths) != len(set(paths)):
            yield f"container {c['name']}: two mounts at one path"
        for m in c.get("volumeMounts") or ():
            used.add(m["name"])
            if m["name"] not in names:
                yield f"container {c['name']}: mount of an unknown volume {m['name']}"
    for name in set(names) - used:
        yield f"volume {name} is mounted nowhere"


def host_paths(pod: Mapping[str, Any]) -> Iterator[str]:
    """Only what the checks read, never the node's keys, kubelet's or the runtime's state
    and sockets; writable only the probe directories."""
    volumes = {
        v["name"]: v["hostPath"]["path"] for v in pod.get("volumes") or () if "hostPath" in v
    }
    for path in volumes.values():
        for forbidden in FORBIDDEN_HOST_PATHS:
            if _under(forbidden, path):
                yield f"hostPath {path} exposes {forbidden}"
                break
    for c in containers(pod):
        for m in c.get("volumeMounts") or ():
            path = volumes.get(m["name"])
            if path is not None and not m.get("readOnly") and not path.endswith(PROBE_DIR):
                yield f"container {c['name']}: host path {path} mounted writable"


def least_privilege(pod: Mapping[str, Any]) -> Iterator[str]:
    """Not root, no capability, no escalation, no token; root only for the init container
    that owns nothing but the probe directories and CAP_CHOWN."""
    if pod.get("automountServiceAccountToken") is not False:
        yield "the ServiceAccount token is mounted (automountServiceAccountToken)"
    if pod.get("hostPID") or pod.get("hostIPC"):
        yield "hostPID or hostIPC"
    pod_sc = pod.get("securityContext") or {}
    volumes = {v["name"]: v for v in pod.get("volumes") or ()}
    for c in containers(pod):
        sc = c.get("securityContext") or {}
        name = c["name"]
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        caps = sc.get("capabilities") or {}
        privileged = sc.get("privileged") is True
        if not sc.get("readOnlyRootFilesystem"):
            yield f"container {name}: writable root filesystem"
        if not privileged and "ALL" not in (caps.get("drop") or ()):
            yield f"container {name}: capabilities not dropped (drop: [ALL])"
        if not privileged and sc.get("allowPrivilegeEscalation") is not False:
            yield f"container {name}: privilege escalation allowed"
        if uid == 0 or not non_root:
            added = frozenset(caps.get("add") or ())
            mounts = [volumes.get(m["name"], {}) for m in c.get("volumeMounts") or ()]
            only_probe_dirs = mounts and all(
                str(v.get("hostPath", {}).get("path", "")).endswith(PROBE_DIR) for v in mounts
            )
            if privileged or not added <= ROOT_CAPABILITIES or not only_probe_dirs:
                yield f"container {name}: runs as root"
        elif added_caps := (caps.get("add") or ()):
            yield f"container {name}: adds {added_caps} (lost by a non-root user anyway)"


def daemonset_selector(obj: Obj) -> Iterator[str]:
    """The API server refuses a selector that does not match the template's labels."""
    if obj.get("kind") != "DaemonSet":
        return
    selector = obj["spec"]["selector"].get("matchLabels") or {}
    labels = obj["spec"]["template"]["metadata"].get("labels") or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        yield "spec.selector does not match the pod template's labels"


# --- across objects --------------------------------------------------------------------


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def across(objects: Iterable[Obj]) -> Iterator[str]:
    """Two DaemonSets never select each other's pods; the Service finds every pod, the
    ServiceMonitor the Service, by the port name the Service has."""
    objs = list(objects)
    daemonsets = [o for o in objs if o.get("kind") == "DaemonSet"]
    for i, a in enumerate(daemonsets):
        for b in daemonsets[i + 1 :]:
            b_labels = b["spec"]["template"]["metadata"]["labels"]
            if _matches(a["spec"]["selector"]["matchLabels"], b_labels):
                yield f"DaemonSets {a['metadata']['name']} and {b['metadata']['name']} overlap"
    services = [o for o in objs if o.get("kind") == "Service"]
    for svc in services:
        for ds in daemonsets:
            labels = ds["spec"]["template"]["metadata"]["labels"]
            if not _matches(svc["spec"].get("selector") or {}, labels):
                yield f"Service {svc['metadata']['name']} misses DaemonSet {ds['metadata']['name']}"
    for sm in (o for o in objs if o.get("kind") == "ServiceMonitor"):
        selector = sm["spec"]["selector"].get("matchLabels") or {}
        found = [s for s in services if _matches(selector, s["metadata"].get("labels") or {})]
        if not found:
            yield f"ServiceMonitor {sm['metadata']['name']} selects no Service"
        ports = {p.get("name") for s in found for p in s["spec"]["ports"]}
        for endpoint in sm["spec"]["endpoints"]:
            if endpoint.get("port") not in ports:
                name = sm["metadata"]["name"]
                yield f"ServiceMonitor {name}: no Service port {endpoint.get('port')}"


def violations(
    objects: Iterable[Obj],
    allowed_resources: frozenset[str] = frozenset(),
    require_recursive_read_only: bool = True,
) -> list[str]:
    """Every rule on every object; each message names the object."""
    objs = list(objects)
    found: list[str] = []
    for obj in objs:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        found += [f"{where}: {m}" for m in daemonset_selector(obj)]
        pod = pod_spec(obj)
        if pod is None:
            continue
        for messages in (
            privileged_escalation(pod),
            extended_resources(pod, allowed_resources),
            tolerates_no_schedule(pod),
            recursive_read_only(pod, require_recursive_read_only),
            propagation(pod),
            volumes_match(pod),
            host_paths(pod),
            least_privilege(pod),
        ):
            found += [f"{where}: {m}" for m in messages]
    found += list(across(objs))
    return found
