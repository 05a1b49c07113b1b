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
The gateway file given to `legate render`, verbatim. It stays text on purpose: Helm reads YAML as YAML 1.1, where a
key such as a JWKS's `n` turns into `false`, so parsing and re-serialising it here would corrupt it.
*/}}
{{- define "legate.gatewayFile" -}}
{{- if not (kindIs "string" .Values.gateway) -}}
{{- fail "gateway: give the gateway file as text (--set-file gateway=FILE, or gateway: | ...), not as a mapping" -}}
{{- end -}}
{{- if not (trim .Values.gateway) -}}
{{- fail "gateway: set the gateway file (--set-file gateway=FILE)" -}}
{{- end -}}
{{- .Values.gateway -}}
{{- end -}}

{{/* The Service name of authz, ratelimit or statsink: (dict "root" $ "component" "authz"). */}}
{{- define "legate.serviceName" -}}
{{- (get .root.Values .component).service.name | default .component -}}
{{- end -}}

{{/* Files placed beside the gateway file (an API key store, a JWKS file), by file name. */}}
{{- define "legate.gatewayFiles" -}}
{{- range $name, $content := .Values.gatewayFiles -}}
{{- printf "%s\n%s\n" $name $content -}}
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

{{/* The chart's Redis as a container env entry: the in-chart Redis, else the external one's Secret. */}}
{{- define "legate.redisEnv" -}}
{{- if .Values.redis.enabled -}}
- { name: Legate__Redis__Configuration, value: {{ printf "%s-redis:%v" (include "legate.fullname" .) .Values.redis.port | quote }} }
{{- else -}}
- name: Legate__Redis__Configuration
  valueFrom:
    secretKeyRef: { name: {{ .Values.redis.external.existingSecret }}, key: {{ .Values.redis.external.existingSecretKey }} }
{{- end -}}
{{- end -}}

{{/*
True when the gateway file keeps its API keys in Redis (api_keys: {redis: true}): authz then needs the chart's Redis,
and refuses to start without it. Only then, since with Redis configured authz's readiness follows Redis.
*/}}
{{- define "legate.authzUsesRedis" -}}
{{- $gateway := fromYaml (include "legate.gatewayFile" .) -}}
{{- /* As the loaders read it: true or "true"; a quoted "false" is a non-empty, truthy string to Helm. */ -}}
{{- if and (kindIs "map" $gateway.api_keys) (eq (toString $gateway.api_keys.redis) "true") -}}true{{- end -}}
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

{{/*
The files the gateway file has Envoy read, as a JSON list of {where, file, key}: each listener's certificates, keys
and client CA (listeners[N].tls), and services.tls's client certificate, key and CA. "key" marks a certificate or key,
which must be in a mounted Secret; a CA may also be a bundle of Envoy's image.
*/}}
{{- define "legate.envoyTlsFiles" -}}
{{- $gateway := fromYaml (include "legate.gatewayFile" .) -}}
{{- $files := list -}}
{{- range $i, $listener := $gateway.listeners | default list -}}
{{- if and (kindIs "map" $listener) (kindIs "map" $listener.tls) -}}
{{- $where := printf "listeners[%d].tls" $i -}}
{{- range $listener.tls.certificates | default list -}}
{{- if kindIs "map" . -}}
{{- range list .cert_file .key_file -}}
{{- if . }}{{ $files = append $files (dict "where" $where "file" (toString .) "key" true) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with $listener.tls.client_ca_file }}{{ $files = append $files (dict "where" $where "file" (toString .) "key" false) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if and (kindIs "map" $gateway.services) (kindIs "map" ($gateway.services | default dict).tls) -}}
{{- $tls := $gateway.services.tls -}}
{{- range list $tls.cert_file $tls.key_file -}}
{{- if . }}{{ $files = append $files (dict "where" "services.tls" "file" (toString .) "key" true) }}{{ end -}}
{{- end -}}
{{- with $tls.ca_file }}{{ $files = append $files (dict "where" "services.tls" "file" (toString .) "key" false) }}{{ end -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/*
Every TLS file the gateway file names under /etc/legate-tls/<secret>/ (its listeners', and services.tls's for the
links to the services) must come from a Secret that envoy.tlsSecrets mounts there: otherwise Envoy would start
without the certificate and reset every TLS connection (and not notice the files arriving later). Certificates and
keys must be there: nothing else is mounted into Envoy's pod. (A CA may also be a bundle of Envoy's image.)
*/}}
{{- define "legate.checkTlsSecrets" -}}
{{- $mounted := .Values.envoy.tlsSecrets -}}
{{- range fromJsonArray (include "legate.envoyTlsFiles" .) -}}
{{- $file := .file -}}
{{- if hasPrefix "/etc/legate-tls/" $file -}}
{{- $parts := splitList "/" (trimPrefix "/etc/legate-tls/" $file) -}}
{{- $secret := index $parts 0 -}}
{{- if not (has $secret $mounted) -}}
{{- fail (printf "gateway: %s names %s, but envoy.tlsSecrets does not mount a Secret named %s at /etc/legate-tls/%s/" .where $file $secret $secret) -}}
{{- end -}}
{{- if ne (len $parts) 2 -}}
{{- fail (printf "gateway: %s names %s, but a Secret's keys are files directly in /etc/legate-tls/%s/ (tls.crt, tls.key, ca.crt)" .where $file $secret) -}}
{{- end -}}
{{- else if .key -}}
{{- fail (printf "gateway: %s names %s, outside /etc/legate-tls/: the chart mounts certificates and keys only there, from the Secrets in envoy.tlsSecrets (/etc/legate-tls/<secret>/tls.crt, tls.key)" .where $file) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Envoy Service publishes exactly the gateway file's listeners: each listener's port is one of envoy.ports (else
clients could never reach it), and each of envoy.ports is a listener's port (else the Service leads nowhere). A
listener on 127.0.0.1 is reachable from inside the pod only, and needs no Service port. No `listeners` means the
gateway file's default, 8080.
*/}}
{{- define "legate.checkListenerPorts" -}}
{{- $gateway := fromYaml (include "legate.gatewayFile" .) -}}
{{- $listeners := $gateway.listeners | default (list (dict "name" "http" "port" 8080)) -}}
{{- $published := list -}}
{{- range .Values.envoy.ports -}}{{- $published = append $published (toString (int .port)) -}}{{- end -}}
{{- $listening := list -}}
{{- if kindIs "slice" $listeners -}}
{{- range $i, $listener := $listeners -}}
{{- if kindIs "map" $listener -}}
{{- $port := toString (int ($listener.port | default 8080)) -}}
{{- $lname := $listener.name | default (ternary "http" (printf "http%d" $i) (eq $i 0)) -}}
{{- $listening = append $listening $port -}}
{{- if and (not (has $port $published)) (ne (toString $listener.address) "127.0.0.1") -}}
{{- fail (printf "gateway: listeners[%d] (%v) listens on port %s, but envoy.ports does not publish it: add { name: %v, port: %s } (servicePort: the Service's port, when another)" $i $lname $port $lname $port) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $i, $p := .Values.envoy.ports -}}
{{- if not (has (toString (int $p.port)) $listening) -}}
{{- fail (printf "envoy.ports[%d] publishes port %v, where the gateway file has no listener: envoy.ports lists the listeners' ports (%s)" $i (int $p.port) (join ", " $listening)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The keys of the Secret mounted at /etc/legate-tls/<secret>/ (the "secret" argument) that the gateway file names for
Envoy (listener TLS, services.tls), one a line. Listed as the volume's items, a key the Secret lacks keeps the pod from
starting, with an event naming it: Envoy started without the file would report ready, reset every TLS connection and
never notice the file arriving later.
*/}}
{{- define "legate.tlsSecretKeys" -}}
{{- $prefix := printf "/etc/legate-tls/%s/" .secret -}}
{{- $keys := list -}}
{{- range fromJsonArray (include "legate.envoyTlsFiles" .root) -}}
{{- if hasPrefix $prefix .file -}}
{{- $keys = append $keys (trimPrefix $prefix .file) -}}
{{- end -}}
{{- end -}}
{{- $keys | uniq | sortAlpha | join "\n" -}}
{{- end -}}

{{/*
Service-link TLS: the gateway file's services.tls (what Envoy speaks to the services) and serviceTls (what they
serve) must agree, or every call from Envoy to authz, ratelimit and statsink fails — with authz failing closed, every
request. A service needs its certificate Secret, and a service asking for a client certificate needs Envoy to have one.
*/}}
{{- define "legate.checkServiceTls" -}}
{{- $gateway := fromYaml (include "legate.gatewayFile" .) -}}
{{- $services := $gateway.services | default dict -}}
{{- $tls := and (kindIs "map" $services) (kindIs "map" $services.tls) -}}
{{- $v := .Values.serviceTls -}}
{{- if and $tls (not $v.enabled) -}}
{{- fail "gateway: services.tls has Envoy call the services over TLS, but serviceTls.enabled is false: they would serve h2c and every call would fail; set serviceTls.enabled=true and their certificate Secrets in serviceTls.secrets" -}}
{{- end -}}
{{- if and $v.enabled (not $tls) -}}
{{- fail "serviceTls.enabled: the services serve TLS, but the gateway file has no services.tls: Envoy would call them in h2c and every call would fail; add services.tls (ca_file, cert_file, key_file at /etc/legate-tls/<secret>/, a Secret in envoy.tlsSecrets)" -}}
{{- end -}}
{{- if $v.enabled -}}
{{- range $component := list "authz" "ratelimit" "statsink" -}}
{{- if not (get $v.secrets $component) -}}
{{- fail (printf "serviceTls.secrets.%s: set the Secret (kubernetes.io/tls: tls.crt, tls.key) holding %s's certificate" $component $component) -}}
{{- end -}}
{{- end -}}
{{- if and $v.requireClientCertificate (not $services.tls.cert_file) -}}
{{- fail "serviceTls.requireClientCertificate: the services require a client certificate, but the gateway file's services.tls gives Envoy none: add cert_file and key_file (from a Secret in envoy.tlsSecrets), or set serviceTls.requireClientCertificate=false" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A service's TLS Secrets as (dict "secret" S "clientCa" C), JSON: S holds its certificate (tls.crt, tls.key), C the CA
(ca.crt) Envoy's client certificate must chain to (empty: no client certificate asked for); both empty without
serviceTls. Call with (dict "root" $ "component" "authz").
*/}}
{{- define "legate.serviceTlsSecrets" -}}
{{- $v := .root.Values.serviceTls -}}
{{- $secret := ternary (get $v.secrets .component) "" (and $v.enabled true) -}}
{{- $clientCa := ternary ($v.clientCaSecret | default $secret) "" (and $v.enabled $v.requireClientCertificate) -}}
{{- toJson (dict "secret" $secret "clientCa" $clientCa) -}}
{{- end -}}
