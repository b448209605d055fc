// How a kube-prometheus build uses the mixin, the way kube-prometheus's
// components/node-exporter.libsonnet wires node-mixin: jsonnet-bundler vendors
// github.com/kubev/kubev-node-exporter (subdir mixin) into vendor/, `jsonnet -J vendor`
// finds it there. tests/pack/test_mixin.py renders this file.
local kubev = (import 'github.com/kubev/kubev-node-exporter/mixin/mixin.libsonnet') + {
  _config+:: {
    kubevSelector: 'job="kubev-node-exporter",namespace="monitoring"',
    runbookURLPattern: 'https://runbooks.example.com/kubev/%s',
    showMultiCluster: true,
  },
};
{
  prometheusRule: {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'kubev-node-exporter-rules',
      namespace: 'monitoring',
      labels: { prometheus: 'k8s', role: 'alert-rules' },
    },
    spec: {
      local r = if std.objectHasAll(kubev, 'prometheusRules') then kubev.prometheusRules.groups else [],
      local a = if std.objectHasAll(kubev, 'prometheusAlerts') then kubev.prometheusAlerts.groups else [],
      groups: a + r,
    },
  },
  dashboards: kubev.grafanaDashboards,
}
