"""kubev-node-exporter: does this node still meet the Kube-V platform's requirements?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kubev-node-exporter")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
