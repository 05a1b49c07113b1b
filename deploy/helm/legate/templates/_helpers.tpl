{{/* Names. */}}
{{- define "legate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "legate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "authz"). */}}
{{- define "legate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "legate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "legate.labels" -}}
{{ include "legate.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* An image reference: call with (dict "root" $ "image" .Values.x.image). The tag defaults to the appVersion. */}}
{{- define "legate.image" -}}
{{- $registry := .root.Values.global.imageRegistry -}}
{{- $repository := ternary (printf "%s/%s" $registry .image.repository) .image.repository (ne $registry "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The gateway file given to `legate render`: the values' gateway (a mapping or a YAML string; empty = the chart's
example), with services.{authz,ratelimit,statsink}.address pointing at this release's Services.
*/}}
{{- define "legate.gatewayFile" -}}
{{- $gateway := dict -}}
{{- if kindIs "map" .Values.gateway -}}
{{- $gateway = deepCopy .Values.gateway -}}
{{- else if .Values.gateway -}}
{{- $gateway = fromYaml .Values.gateway -}}
{{- else -}}
{{- $gateway = fromYaml (.Files.Get "files/gateway.yaml") -}}
{{- end -}}
{{- if hasKey $gateway "Error" -}}
{{- fail (printf "gateway: not a YAML mapping: %s" (get $gateway "Error")) -}}
{{- end -}}
{{- if not $gateway -}}
{{- fail "gateway: set the gateway file (a mapping, or --set-file gateway=FILE)" -}}
{{- end -}}
{{- $services := get $gateway "services" | default dict -}}
{{- range $name := list "authz" "ratelimit" "statsink" -}}
{{- $entry := get $services $name | default dict -}}
{{- $_ := set $entry "address" (printf "%s-%s:%v" (include "legate.fullname" $) $name (get $.Values $name).grpcPort) -}}
{{- $_ := set $services $name $entry -}}
{{- end -}}
{{- $_ := set $gateway "services" $services -}}
{{- toYaml $gateway -}}
{{- end -}}

{{/* Files placed beside the gateway file: the values' gatewayFiles, or the example's. */}}
{{- define "legate.gatewayFiles" -}}
{{- if .Values.gatewayFiles -}}
{{- toYaml .Values.gatewayFiles -}}
{{- else if not .Values.gateway -}}
{{- $files := dict -}}
{{- range $path, $_ := .Files.Glob "files/*" -}}
{{- if ne (base $path) "gateway.yaml" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- if $files -}}{{- toYaml $files -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/* What rolls a pod when the configuration changes. */}}
{{- define "legate.configChecksum" -}}
{{- printf "%s\n%s\n%s" (include "legate.gatewayFile" .) (include "legate.gatewayFiles" .) (include "legate.image" (dict "root" . "image" .Values.legate.image)) | sha256sum -}}
{{- end -}}

{{/*
The init container that renders the configuration into the pod's `config` volume (mounted at /etc/legate):
envoy/ (bootstrap and dynamic/ files), authz/policies.yaml, ratelimit/.
*/}}
{{- define "legate.renderInitContainer" -}}
- name: render
  image: {{ include "legate.image" (dict "root" . "image" .Values.legate.image) }}
  imagePullPolicy: {{ .Values.legate.image.pullPolicy }}
  args: [render, /etc/legate-gateway/gateway.yaml, -o, /etc/legate, --envoy-dir, /etc/legate/envoy]
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
    runAsUser: 1654
  resources:
    {{- toYaml .Values.legate.resources | nindent 4 }}
  volumeMounts:
    - { name: gateway, mountPath: /etc/legate-gateway, readOnly: true }
    - { name: config, mountPath: /etc/legate }
    - { name: tmp, mountPath: /tmp }
{{- end -}}

{{- define "legate.configVolumes" -}}
- name: gateway
  configMap:
    name: {{ include "legate.fullname" . }}-gateway
- name: config
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* Redis connection for ratelimit: true when counters are shared. */}}
{{- define "legate.redisShared" -}}
{{- if or .Values.redis.enabled .Values.redis.external.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "legate.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* HorizontalPodAutoscaler and PodDisruptionBudget of a component: (dict "root" $ "component" "authz" "values" .Values.authz). */}}
{{- define "legate.hpaAndPdb" -}}
{{- $name := printf "%s-%s" (include "legate.fullname" .root) .component -}}
{{- if .values.hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "legate.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ .values.hpa.minReplicas }}
  maxReplicas: {{ .values.hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: { type: Utilization, averageUtilization: {{ .values.hpa.targetCPUUtilizationPercentage }} }
{{- end }}
{{- if and .values.pdb.enabled (or .values.hpa.enabled (gt (int .values.replicas) 1)) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "legate.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "legate.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
