// The kubev-node-exporter monitoring mixin: alerts, recording rules and dashboards, with
// _config (config.libsonnet) for what a deployment changes.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
