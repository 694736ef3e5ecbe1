{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "counter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed by the chart name unless it already contains it. */}}
{{- define "counter.fullname" -}}
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

{{- define "counter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "counter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "counter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "counter.labels" -}}
helm.sh/chart: {{ include "counter.chart" . }}
{{ include "counter.selectorLabels" . }}
app.kubernetes.io/version: {{ include "counter.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: counter-web-server
{{- end }}

{{- define "counter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "counter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "counter.configmapName" -}}
{{- default (printf "%s-store" (include "counter.fullname" . | trunc 57 | trimSuffix "-")) .Values.store.configmap.name }}
{{- end }}

{{- define "counter.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* repository@digest when a digest is given (immutable), else repository:tag. */}}
{{- define "counter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "counter.imageTag" .) }}
{{- end }}
{{- end }}

{{/* Refuse values that would lose counts (a store inside one pod shared by replicas, Redis without
   its URL) or cut requests short (a grace period that ends before the graceful shutdown). */}}
{{- define "counter.validate" -}}
{{- $backend := .Values.store.backend }}
{{- if and (has $backend (list "sqlite" "memory")) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail (printf "store.backend=%s keeps the counts inside one pod: set replicaCount=1 and autoscaling.enabled=false, or use the configmap or redis store" $backend) }}
{{- end }}
{{- $needed := add .Values.preStopSleepSeconds .Values.config.shutdownTimeoutSeconds 5 }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds=%d is too short: it must cover preStopSleepSeconds (%d) + config.shutdownTimeoutSeconds (%d) + 5 seconds to close the store, %d in all" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds) (int .Values.config.shutdownTimeoutSeconds) (int $needed)) }}
{{- end }}
{{- if and (eq $backend "redis") (not .Values.store.redis.existingSecret) }}
{{- fail "store.backend=redis needs store.redis.existingSecret: the name of a Secret holding the Redis URL under store.redis.urlKey" }}
{{- end }}
{{- end }}
