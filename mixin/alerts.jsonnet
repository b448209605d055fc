// jsonnet -S alerts.jsonnet > kubev_alerts.yaml
std.manifestYamlDoc((import 'mixin.libsonnet').prometheusAlerts)
