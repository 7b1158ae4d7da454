{{/*
The base of every object's name: deploy/'s "apptoken-operator" whatever the release is called, so
that `helm install` and `kubectl apply -k deploy` name the same objects alike.
*/}}
{{- define "apptoken-operator.fullname" -}}
{{- default "apptoken-operator" .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels deploy/ gives every object (kustomize `labels`, not in selectors). */}}
{{- define "apptoken-operator.partOfLabels" -}}
app.kubernetes.io/name: apptoken-operator
app.kubernetes.io/part-of: apptoken-operator
{{- end -}}

{{/* Helm's own: which release and chart rendered the object. */}}
{{- define "apptoken-operator.releaseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "apptoken-operator.labels" -}}
{{ include "apptoken-operator.partOfLabels" . }}
{{ include "apptoken-operator.releaseLabels" . }}
{{- end -}}

{{/* The pods'. Immutable in a Deployment's selector: never add a release-specific label here. */}}
{{- define "apptoken-operator.selectorLabels" -}}
app.kubernetes.io/name: apptoken-operator
app.kubernetes.io/component: operator
{{- end -}}

{{- define "apptoken-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "apptoken-operator.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace -}}
{{- end -}}

{{- define "apptoken-operator.clusterResourceNamespace" -}}
{{- default .Release.Namespace .Values.clusterResourceNamespace -}}
{{- end -}}

{{/*
The ConfigMap that tells a namespaced install which namespaces to watch, named after its content
like kustomize's configMapGenerator: a new list is a new name, so the Deployment rolls.
*/}}
{{- define "apptoken-operator.watchConfigMapName" -}}
{{- printf "%s-watch-%s" (include "apptoken-operator.fullname" .) (join "," .Values.namespaces | sha256sum | trunc 10) -}}
{{- end -}}

{{/* The operator's ServiceAccount as a RBAC subject. */}}
{{- define "apptoken-operator.subjects" -}}
- kind: ServiceAccount
  name: {{ include "apptoken-operator.fullname" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{/*
A memory quantity in MiB (a float): plain bytes, or with a binary (Ki, Mi, Gi, Ti) or decimal (k,
M, G, T) suffix, as Kubernetes writes them.
*/}}
{{- define "apptoken-operator.mebibytes" -}}
{{- $q := toString . -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q) -}}
{{- fail (printf "resources.limits.memory: %q is not a memory quantity this chart understands (e.g. 512Mi, 1Gi)" $q) -}}
{{- end -}}
{{- $num := float64 (regexReplaceAll "[A-Za-z]+$" $q "") -}}
{{- $unit := regexReplaceAll "^[0-9.]+" $q "" -}}
{{- $perMiB := dict "" 0.00000095367431640625 "Ki" 0.0009765625 "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 "k" 0.00095367431640625 "M" 0.95367431640625 "G" 953.67431640625 "T" 953674.31640625 -}}
{{- mulf $num (get $perMiB $unit) -}}
{{- end -}}

{{/*
V8's old-space limit in MiB, or "" for none: heapMaxMiB, else three quarters of the memory limit
(rounded down). A heapMaxMiB above three quarters of the limit is refused: V8's heap is not the
process's only memory, and the container would be OOM-killed before V8 collects.
*/}}
{{- define "apptoken-operator.heapMaxMiB" -}}
{{- $limit := dig "limits" "memory" "" .Values.resources -}}
{{- $max := 0 -}}
{{- if $limit -}}
{{- $max = floor (mulf (include "apptoken-operator.mebibytes" $limit | float64) 0.75) | int -}}
{{- end -}}
{{- if not (kindIs "invalid" .Values.heapMaxMiB) -}}
{{- $heap := int .Values.heapMaxMiB -}}
{{- if lt $heap 1 -}}
{{- fail (printf "heapMaxMiB: %v must be a positive number of MiB (or null: three quarters of resources.limits.memory)" .Values.heapMaxMiB) -}}
{{- end -}}
{{- if and $limit (gt $heap $max) -}}
{{- fail (printf "heapMaxMiB: %d exceeds three quarters of resources.limits.memory %v (%d MiB); raise the limit or leave heapMaxMiB null" $heap $limit $max) -}}
{{- end -}}
{{- $heap -}}
{{- else if $limit -}}
{{- $max -}}
{{- end -}}
{{- end -}}

{{- define "apptoken-operator.nodeOptions" -}}
{{- $heap := include "apptoken-operator.heapMaxMiB" . -}}
{{- $opts := list -}}
{{- if $heap -}}
{{- $opts = append $opts (printf "--max-old-space-size=%s" $heap) -}}
{{- end -}}
{{- with .Values.nodeOptions -}}
{{- $opts = append $opts . -}}
{{- end -}}
{{- join " " $opts -}}
{{- end -}}

{{/* Settings that would render a broken install are refused with the value to change. */}}
{{- define "apptoken-operator.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicas: %v replicas without leaderElection.enabled would all write; enable leader election or run one replica" .Values.replicas) -}}
{{- end -}}
{{- if ne (len (uniq .Values.namespaces)) (len .Values.namespaces) -}}
{{- fail (printf "namespaces: %v lists a namespace twice" .Values.namespaces) -}}
{{- end -}}
{{- with .Values.sharedCache -}}
{{- if .url -}}
{{- if not (or (hasPrefix "redis://" .url) (hasPrefix "rediss://" .url)) -}}
{{- fail (printf "sharedCache.url: %q must start with redis:// or rediss://" .url) -}}
{{- end -}}
{{- if regexMatch "^rediss?://[^/@]*:[^/@]*@" .url -}}
{{- fail "sharedCache.url: holds a password, which would show in the pod spec; put it in the Secret sharedCache.passwordSecret names" -}}
{{- end -}}
{{- if not .keySecret.name -}}
{{- fail "sharedCache.keySecret.name: the fleet tier needs the fleet key; name the Secret that holds it (base64 of 32 random bytes)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if eq .name "NODE_OPTIONS" -}}
{{- fail "extraEnv: NODE_OPTIONS is set by the chart from heapMaxMiB and nodeOptions; use those" -}}
{{- end -}}
{{- end -}}
{{- end -}}
