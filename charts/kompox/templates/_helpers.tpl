{{/* Chart name, truncated to a DNS label. */}}
{{- define "kompox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's namespaced objects: the release name, with the
chart name added unless the release name already contains it.
*/}}
{{- define "kompox.fullname" -}}
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

{{/*
Name of the release's cluster-scoped objects (ClusterRoles, bindings, the
admission policy): prefixed with the namespace, so that releases of the
same name in two namespaces do not collide.
*/}}
{{- define "kompox.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "kompox.fullname" .) | trunc 200 | trimSuffix "-" }}
{{- end }}

{{- define "kompox.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kompox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kompox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object. Deliberately not app.kubernetes.io/managed-by:
kompox (that label marks the objects Kompox manages for apps); Helm's
value is kept.
*/}}
{{- define "kompox.labels" -}}
helm.sh/chart: {{ include "kompox.chart" . }}
{{ include "kompox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: reconciler
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kompox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kompox.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kompox.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the credential Secrets are mounted (one projected volume). */}}
{{- define "kompox.secretsDir" -}}/etc/kompox/secrets{{- end }}

{{/* True (non-empty) when any credential Secret is configured. */}}
{{- define "kompox.hasSecrets" -}}
{{- if or .Values.git.auth.token.existingSecret .Values.git.auth.ssh.existingSecret .Values.webhook.secret.existingSecret .Values.pullRequests.token.existingSecret }}true{{ end }}
{{- end }}
