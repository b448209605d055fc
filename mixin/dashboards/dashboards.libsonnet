// The committed dashboards (dashboards/*.json, made with grafanalib; copied beside this
// file), with _config applied where a deployment differs from them: the title prefix and
// tags, the data source picked by default, the cluster label and whether the Cluster
// variable shows, and where the runbook links point. Nothing else is changed: the JSON is
// the one the repository tests against a real Prometheus.
local committed = import 'committed.libsonnet';

// node with every string s under the field named key replaced by f(key, s)
local mapStrings(f, node, key='') =
  if std.isObject(node) then { [k]: mapStrings(f, node[k], k) for k in std.objectFields(node) }
  else if std.isArray(node) then [mapStrings(f, v, key) for v in node]
  else if std.isString(node) then f(key, node)
  else node;

local after(text, prefix) =
  assert std.startsWith(text, prefix) : '%s does not start with %s' % [text, prefix];
  std.substr(text, std.length(prefix), std.length(text) - std.length(prefix));

{
  local config = $._config,
  local clusterMatcher(label) = label + '=~"$cluster"',
  local runbook = committed.runbookURL,

  local isRunbook(url) =
    std.startsWith(url, runbook.before) && std.endsWith(url, runbook.after)
    && std.length(url) > std.length(runbook.before) + std.length(runbook.after),

  // a runbook link's alert name, between the template's two halves
  local alertOf(url) =
    std.substr(url, std.length(runbook.before),
               std.length(url) - std.length(runbook.before) - std.length(runbook.after)),

  // only queries name the cluster label, only links point to runbooks
  local rewrite(key, text) =
    if key == 'url' && isRunbook(text) then config.runbookURLPattern % alertOf(text)
    else if (key == 'expr' || key == 'query') && config.clusterLabel != committed.clusterLabel then
      std.strReplace(text, clusterMatcher(committed.clusterLabel), clusterMatcher(config.clusterLabel))
    else text,

  local variable(v) =
    if v.name == 'datasource' then
      v { current+: { text: config.datasourceName, value: config.datasourceName } }
    else if v.name == 'cluster' then
      // label_values(<metric>, <cluster label>)
      local tail = committed.clusterLabel + ')';
      assert std.endsWith(v.query, tail) : 'cluster variable query: ' + v.query;
      v {
        query: std.substr(v.query, 0, std.length(v.query) - std.length(tail)) + config.clusterLabel + ')',
        hide: if config.showMultiCluster then committed.shown else committed.hidden,
      }
    else v,

  local dashboard(d) =
    local body = mapStrings(rewrite, d);
    body {
      title: config.dashboardNamePrefix + after(d.title, committed.titlePrefix),
      tags: config.dashboardTags,
      templating+: { list: [variable(v) for v in body.templating.list] },
    },

  grafanaDashboards+:: {
    [name]: dashboard(committed.dashboards[name])
    for name in std.objectFields(committed.dashboards)
  },
}
