{{/*
Names and labels, as the prometheus-node-exporter chart spells them.
*/}}
{{- define "kne.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kne.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kne.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kne.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kne.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kne.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: metrics
app.kubernetes.io/part-of: kubev-monitoring
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kne.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/*
The roles, one DaemonSet each: [{role, suffix, nodeExpression}]. Without the split, one
DaemonSet judges every node by .Values.role.
*/}}
{{- define "kne.roles" -}}
{{- if .Values.roleSplit.enabled }}
{{- $key := .Values.roleSplit.controlPlaneNodeLabel }}
- role: control-plane
  suffix: -control-plane
  nodeExpression: {key: {{ $key | quote }}, operator: Exists}
- role: worker
  suffix: -worker
  nodeExpression: {key: {{ $key | quote }}, operator: DoesNotExist}
{{- else }}
- role: {{ .Values.role }}
  suffix: ""
{{- end }}
{{- end }}

{{/*
Where the exporter finds the host, and the paths below --path.rootfs it reads: each one
mounted on its own, read-only. Returns [{name, hostPath, type, mountPath}].
*/}}
{{- define "kne.hostReads" -}}
- {name: host-proc, hostPath: /proc, type: Directory, mountPath: /host/proc}
- {name: host-sys, hostPath: /sys, type: Directory, mountPath: /host/sys}
- {name: host-dev, hostPath: /dev, type: Directory, mountPath: /host/dev}
- {name: host-resolv-conf, hostPath: /etc/resolv.conf, type: File, mountPath: /host/root/etc/resolv.conf}
{{- /* a kernel without modules (some VMs) has none: the pod starts all the same */}}
- {name: host-modules, hostPath: /lib/modules, type: DirectoryOrCreate, mountPath: /host/root/lib/modules}
{{- with .Values.kubeletConfig }}
- {name: host-kubelet-config, hostPath: {{ . | quote }}, type: File, mountPath: {{ printf "/host/root%s" . | quote }}}
{{- end }}
{{- end }}

{{/*
The fsync probe's directories: one per storage path (and etcd's data directory on the
roles that run etcd), each <path>/.kubev-node-exporter-pod on the host, created by kubelet,
handed to the exporter's user by the init container, and mounted where the exporter looks
for the path itself, so that the filesystem it measures is the path's own.
Takes (dict "root" $ "role" role). Returns [{name, hostPath, mountPath}].
*/}}
{{- define "kne.probeDirs" -}}
{{- $root := .root }}
{{- range $i, $path := $root.Values.storage.paths }}
- {name: {{ printf "probe-storage-%d" $i }}, hostPath: {{ printf "%s/.kubev-node-exporter-pod" $path | quote }}, mountPath: {{ printf "/host/root%s" $path | quote }}}
{{- end }}
{{- if and $root.Values.etcdProbe.enabled (has .role (list "single-node" "control-plane")) }}
- {name: probe-etcd, hostPath: {{ printf "%s/.kubev-node-exporter-pod" $root.Values.etcdProbe.dataDir | quote }}, mountPath: {{ printf "/host/root%s" $root.Values.etcdProbe.dataDir | quote }}}
{{- end }}
{{- end }}

{{/*
The exporter's configuration: .Values.config with the keys that follow what the chart
mounts set by the chart.
*/}}
{{- define "kne.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $checks := get $cfg "checks" | default dict }}
{{- $disk := get $checks "disk" | default dict }}
{{- $_ := set $disk "storage_paths" .Values.storage.paths }}
{{- if .Values.etcdProbe.enabled }}
{{- $_ := set $disk "etcd_data_dir" .Values.etcdProbe.dataDir }}
{{- else }}
{{- $_ := set $disk "etcd_data_dir" nil }}
{{- end }}
{{- $_ := set $checks "disk" $disk }}
{{- $dns := get $checks "dns" | default dict }}
{{- $_ := set $dns "kubelet_config" (.Values.kubeletConfig | default nil) }}
{{- $_ := set $checks "dns" $dns }}
{{- $devices := get $checks "devices" | default dict }}
{{- /* kubelet keeps its device-plugin directory 0750 root: the pod's user cannot look in */}}
{{- $_ := set $devices "device_plugin_dir" nil }}
{{- $_ := set $checks "devices" $devices }}
{{- $peers := get $checks "peers" | default dict }}
{{- if not (get $peers "dns_name") }}
{{- /* the headless Service: with the host network its A/AAAA records are the nodes' addresses */}}
{{- $_ := set $peers "dns_name" (include "kne.serviceDNSName" .) }}
{{- end }}
{{- $identity := get $peers "identity" | default dict }}
{{- /* every node's exporter listens on the one port */}}
{{- $_ := set $identity "port" .Values.port }}
{{- if and .Values.webConfig.tls (not (hasKey $identity "scheme")) }}
{{- $_ := set $identity "scheme" "https" }}
{{- end }}
{{- $_ := set $peers "identity" $identity }}
{{- $_ := set $checks "peers" $peers }}
{{- if .Values.kubeOvnSecureServing.enabled }}
{{- $ovn := get $checks "ovn" | default dict }}
{{- $_ := set $ovn "scheme" "https" }}
{{- $_ := set $ovn "bearer_token_file" "/var/run/secrets/kube-ovn-metrics/token" }}
{{- $tls := get $ovn "tls" | default dict }}
{{- $_ := set $tls "insecure_skip_verify" true }}
{{- $_ := set $ovn "tls" $tls }}
{{- $_ := set $checks "ovn" $ovn }}
{{- end }}
{{- $_ := set $cfg "checks" $checks }}
{{- toYaml $cfg }}
{{- end }}

{{/*
The headless Service's DNS name: <fullname>.<namespace>.svc.<clusterDomain>.
*/}}
{{- define "kne.serviceDNSName" -}}
{{ include "kne.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end }}

{{/*
The probes: HTTP(S) on the health paths, which answer without basic auth; only the port
when the web config wants a client certificate, which kubelet cannot present.
*/}}
{{- define "kne.probe" -}}
{{- if .root.Values.webConfig.requireClientCert }}
tcpSocket:
  port: metrics
{{- else }}
httpGet:
  path: {{ .path }}
  port: metrics
  scheme: {{ ternary "HTTPS" "HTTP" .root.Values.webConfig.tls }}
{{- end }}
{{- end }}
