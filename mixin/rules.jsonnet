// jsonnet -S rules.jsonnet > kubev_rules.yaml
std.manifestYamlDoc((import 'mixin.libsonnet').prometheusRules)
