"""One container of a rendered pod, run the way a container runtime runs it as far as the
mounts and the process's identity go: a root of its own (read-only, with the image's
files), every volume mount of the rendered spec bound as containerd binds it (rbind,
private propagation, read-only on the top mount or recursively with recursiveReadOnly),
hostPath types checked as kubelet checks them (DirectoryOrCreate creates), the pod's
init containers first, then the process with the container's uid, gid, groups (fsGroup,
supplementalGroups), capability bounding set and no_new_privs.

Not simulated, and not what the tests here judge: seccomp, AppArmor, the device cgroup,
cgroups, the PID namespace.

    python -m tests.deploy.podsim SPEC.json    # as root, inside `unshare --mount`

SPEC: {"pod": <pod spec>, "configmaps": {name: {key: text}}, "fake_host": dir,
       "real_host": [paths taken from this machine], "submounts": [host paths that get
       a tmpfs of their own], "work": dir, "image_dirs": [bound read-only at the same
       path], "entrypoint": [...], "path": "$PATH", "pythonpath": dir,
       "field_refs": {"status.hostIP": ...}, "container": name, "argv": [...] or null,
       "as_root": bool}
The last process replaces this one (exec): its pid is the pid this was started with.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

Spec = dict[str, Any]

#: containerd's default capabilities (oci.DefaultSpec / pkg/cap), kept unless dropped
RUNTIME_CAPABILITIES = [
    "chown",
    "dac_override",
    "fsetid",
    "fowner",
    "mknod",
    "net_raw",
    "setgid",
    "setuid",
    "setfcap",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
    "kill",
    "audit_write",
]

#: found on this machine's PATH, not the container's
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
_SYS_MOUNT_SETATTR = {"x86_64": 442, "aarch64": 442}
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def recursive_read_only(path: Path) -> None:
    """mount_setattr(2) with AT_RECURSIVE and MOUNT_ATTR_RDONLY, as runc does for
    recursiveReadOnly (Linux 5.12+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    number = _SYS_MOUNT_SETATTR[platform.machine()]
    done = libc.syscall(
        number,
        _AT_FDCWD,
        str(path).encode(),
        _AT_RECURSIVE,
        ctypes.byref(attr),
        ctypes.sizeof(attr),
    )
    if done != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount_setattr {path}: {os.strerror(err)}")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def host_source(path: str, spec: Spec) -> Path:
    for real in spec["real_host"]:
        if path == real or path.startswith(real.rstrip("/") + "/"):
            return Path(path)
    return Path(spec["fake_host"]) / path.lstrip("/")


def check_host_path(source: Path, kind: str | None) -> None:
    """kubelet's hostPath type check (pkg/volume/hostpath); containerd creates a missing
    untyped path as a directory."""
    if kind == "DirectoryOrCreate" or (not kind and not source.exists()):
        source.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif kind == "Directory" and not source.is_dir():
        raise SystemExit(f"hostPath type check failed: {source} is not a directory")
    elif kind == "File" and not source.is_file():
        raise SystemExit(f"hostPath type check failed: {source} is not a file")
    elif kind not in (None, "", "Directory", "DirectoryOrCreate", "File"):
        raise SystemExit(f"hostPath type {kind} is not simulated")


def bind(source: Path, target: Path, read_only: bool, recursive: bool) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    mount("--rbind", str(source), str(target))
    mount("--make-rprivate", str(target))
    if read_only:
        if recursive:
            recursive_read_only(target)
        else:
            mount("-o", "remount,bind,ro", str(target))


def image_root(spec: Spec, name: str) -> Path:
    """An empty root with the image's files: /usr (and the usual links into it), the
    directories the image is made of, /etc with a resolv.conf, /proc, a minimal /dev."""
    root = Path(spec["work"]) / f"root-{name}"
    root.mkdir(parents=True)
    mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(root))
    for directory in ("/usr", *spec["image_dirs"]):
        bind(Path(directory), root / directory.lstrip("/"), True, True)
    for link in ("bin", "lib", "lib64", "sbin"):
        (root / link).symlink_to(f"usr/{link}")
    (root / "etc").mkdir()
    (root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "proc").mkdir()
    mount("-t", "proc", "proc", str(root / "proc"))
    for device in ("null", "zero", "random", "urandom"):
        bind(Path("/dev") / device, root / "dev" / device, False, False)
    return root


def container_root(spec: Spec, container: dict[str, Any]) -> Path:
    pod = spec["pod"]
    root = image_root(spec, container["name"])
    volumes = {v["name"]: v for v in pod.get("volumes") or ()}
    # containerd mounts parents first (by path depth)
    mounts = sorted(container.get("volumeMounts") or (), key=lambda m: m["mountPath"].count("/"))
    for m in mounts:
        volume = volumes[m["name"]]
        if "hostPath" in volume:
            source = host_source(volume["hostPath"]["path"], spec)
            check_host_path(source, volume["hostPath"].get("type"))
        elif "configMap" in volume:
            source = Path(spec["work"]) / f"configmap-{container['name']}-{m['name']}"
            source.mkdir()
            for key, text in spec["configmaps"][volume["configMap"]["name"]].items():
                (source / key).write_text(text)
                (source / key).chmod(0o644)
            source.chmod(0o755)
        else:
            raise SystemExit(f"volume {m['name']}: only hostPath and configMap are simulated")
        mode = m.get("recursiveReadOnly")
        bind(
            source,
            root / m["mountPath"].lstrip("/"),
            bool(m.get("readOnly")),
            mode in ("Enabled", "IfPossible"),
        )
    if (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        mount("-o", "remount,ro", str(root))
    return root


def identity(spec: Spec, container: dict[str, Any]) -> list[str]:
    """setpriv's arguments for the container's user, groups and capabilities."""
    pod_sc = spec["pod"].get("securityContext") or {}
    sc = container.get("securityContext") or {}
    if spec.get("as_root") and container["name"] == spec["container"]:
        return ["--reuid=0", "--regid=0", "--clear-groups"]
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", 0))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", 0))
    groups = [g for g in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or ())] if g]
    args = [f"--reuid={uid}", f"--regid={gid}"]
    args.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
    if not sc.get("privileged"):
        caps = sc.get("capabilities") or {}
        drop = {c.lower() for c in caps.get("drop") or ()}
        kept = set() if "all" in drop else set(RUNTIME_CAPABILITIES) - drop
        kept |= {c.lower() for c in caps.get("add") or ()}
        args.append("--bounding-set=-all" + "".join(f",+{c}" for c in sorted(kept)))
        args += ["--inh-caps=-all", "--ambient-caps=-all"]
        if sc.get("allowPrivilegeEscalation") is False:
            args.append("--no-new-privs")
    return args


def environment(spec: Spec, container: dict[str, Any]) -> dict[str, str]:
    env = {
        "PATH": spec["path"],
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": spec["pythonpath"],
    }
    for item in container.get("env") or ():
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = spec["field_refs"][item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def argv_of(spec: Spec, container: dict[str, Any], env: dict[str, str]) -> list[str]:
    if spec.get("argv") and container["name"] == spec["container"]:
        return list(spec["argv"])
    command = container.get("command") or spec["entrypoint"]
    args = container.get("args") or []
    # $(VAR) from the container's environment, as kubelet expands it
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), a) for a in [*command, *args]]


def run(spec: Spec) -> None:
    # a fresh tmpfs over each (in this namespace only): a submount the tests may write
    # into when a read-only mount fails to cover it, without touching the real one
    for path in spec.get("submounts") or ():
        target = host_source(path, spec)
        target.mkdir(parents=True, exist_ok=True)
        mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(target))
    pod = spec["pod"]
    for init in pod.get("initContainers") or ():
        root = container_root(spec, init)
        env = environment(spec, init)
        command = [CHROOT, str(root), "/usr/bin/setpriv", *identity(spec, init), "--"]
        done = subprocess.run([*command, *argv_of(spec, init, env)], env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"init container {init['name']} exited {done.returncode}")
    (container,) = [c for c in pod["containers"] if c["name"] == spec["container"]]
    root = container_root(spec, container)
    env = environment(spec, container)
    command = [CHROOT, str(root), "/usr/bin/setpriv", *identity(spec, container), "--"]
    os.execve(CHROOT, [*command, *argv_of(spec, container, env)], env)


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
