"""Each rule a schema does not see catches what it is for: the chart's own DaemonSet,
changed in one way at a time, and the manifests this project shipped before (issues 12,
13 and 16) are refused with a message that names the object and the reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from deploy import policy
from deploy.render import Chart
from tests.deploy.validate import by_kind

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def default(chart: Chart) -> list[Obj]:
    return chart.render().objects


def daemonset(objects: list[Obj]) -> Obj:
    return by_kind(objects, "DaemonSet")[0]


def exporter(obj: Obj) -> Obj:
    container: Obj = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def changed(objects: list[Obj], change: Callable[[Obj], None]) -> list[Obj]:
    objs = copy.deepcopy(objects)
    change(daemonset(objs))
    return objs


def test_the_default_render_keeps_every_rule(default: list[Obj]) -> None:
    assert policy.violations(default) == []


def _privileged_no_escalation(ds: Obj) -> None:
    exporter(ds)["securityContext"]["privileged"] = True


def _kvm_resource(ds: Obj) -> None:
    exporter(ds)["resources"]["limits"]["devices.kubevirt.io/kvm"] = "1"


def _control_plane_tolerations(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["tolerations"] = [
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        }
    ]


def _no_execute_only(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["tolerations"] = [{"operator": "Exists", "effect": "NoExecute"}]


def _recursive_writable(ds: Obj) -> None:
    mount = exporter(ds)["volumeMounts"][0]
    mount["readOnly"] = False


def _recursive_propagation(ds: Obj) -> None:
    exporter(ds)["volumeMounts"][0]["mountPropagation"] = "HostToContainer"


def _plain_read_only(ds: Obj) -> None:
    del exporter(ds)["volumeMounts"][1]["recursiveReadOnly"]


def _bidirectional(ds: Obj) -> None:
    mount = exporter(ds)["volumeMounts"][0]
    del mount["recursiveReadOnly"]
    mount["mountPropagation"] = "Bidirectional"


def _host_root(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] = "/"


def _runtime_socket_dir(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] = "/run"


def _kubelet_writable(ds: Obj) -> None:
    volumes = ds["spec"]["template"]["spec"]["volumes"]
    (probe,) = [v for v in volumes if v["name"] == "probe-storage-0"]
    probe["hostPath"]["path"] = "/var/lib/kubelet"


def _root_user(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    ds["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
    exporter(ds)["securityContext"]["runAsNonRoot"] = False


def _init_more_caps(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["initContainers"][0]["securityContext"]["capabilities"][
        "add"
    ] = [
        "CHOWN",
        "DAC_OVERRIDE",
    ]


def _init_more_mounts(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"].append(
        {"name": "host-proc", "mountPath": "/proc-of-the-host"}
    )


def _token(ds: Obj) -> None:
    ds["spec"]["template"]["spec"]["automountServiceAccountToken"] = True


def _capabilities_kept(ds: Obj) -> None:
    del exporter(ds)["securityContext"]["capabilities"]


def _unknown_volume(ds: Obj) -> None:
    exporter(ds)["volumeMounts"].append({"name": "nowhere", "mountPath": "/x", "readOnly": True})


def _selector(ds: Obj) -> None:
    ds["spec"]["selector"]["matchLabels"]["kubev.io/role"] = "worker"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_privileged_no_escalation, "privileged: true with allowPrivilegeEscalation: false"),
        (_kvm_resource, "limits devices.kubevirt.io/kvm: a node may not offer it"),
        (_control_plane_tolerations, "no toleration covers every NoSchedule taint"),
        (_no_execute_only, "no toleration covers every NoSchedule taint"),
        (_recursive_writable, "recursiveReadOnly without readOnly: true"),
        (_recursive_propagation, "recursiveReadOnly with mountPropagation"),
        (_plain_read_only, "a read-only host path without recursiveReadOnly"),
        (_bidirectional, "Bidirectional propagation needs privileged"),
        (_host_root, "hostPath / exposes /etc/kubernetes"),
        (_runtime_socket_dir, "hostPath /run exposes /run/containerd"),
        (_kubelet_writable, "exposes /var/lib/kubelet/pki"),
        (_kubelet_writable, "host path /var/lib/kubelet mounted writable"),
        (_root_user, "container exporter: runs as root"),
        (_init_more_caps, "container probe-dirs: runs as root"),
        (_init_more_mounts, "container probe-dirs: runs as root"),
        (_token, "the ServiceAccount token is mounted"),
        (_capabilities_kept, "capabilities not dropped"),
        (_unknown_volume, "mount of an unknown volume nowhere"),
        (_selector, "spec.selector does not match the pod template's labels"),
    ],
)
def test_each_rule_catches_its_case(
    default: list[Obj], change: Callable[[Obj], None], message: str
) -> None:
    found = policy.violations(changed(default, change))
    assert any(message in f and f.startswith("DaemonSet/kubev-node-exporter: ") for f in found), (
        found
    )


def test_a_requested_resource_passes_where_the_variant_asks_for_it(default: list[Obj]) -> None:
    objects = changed(default, _kvm_resource)
    assert (
        policy.violations(objects, allowed_resources=frozenset({"devices.kubevirt.io/kvm"})) == []
    )


def test_the_old_without_kubevirt_overlay_is_refused_twice(default: list[Obj]) -> None:
    """What overlays/without-kubevirt rendered before: the base's kvm request kept, and
    privileged beside allowPrivilegeEscalation: false."""

    def old(ds: Obj) -> None:
        _kvm_resource(ds)
        _privileged_no_escalation(ds)

    found = policy.violations(changed(default, old))
    assert len([f for f in found if "kvm" in f or "privileged: true" in f]) == 2


def test_objects_that_miss_each_other_are_refused(default: list[Obj]) -> None:
    objs = copy.deepcopy(default)
    (svc,) = by_kind(objs, "Service")
    svc["spec"]["selector"] = {"app.kubernetes.io/name": "other"}
    assert any("misses DaemonSet" in f for f in policy.violations(objs))
    twins = [*copy.deepcopy(default), copy.deepcopy(daemonset(default))]
    twins[-1]["metadata"]["name"] = "twin"
    assert any("overlap" in f for f in policy.violations(twins))
