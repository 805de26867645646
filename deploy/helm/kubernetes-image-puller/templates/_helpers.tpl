{{/* Labels shared by every object of the chart. */}}
{{- define "kip.labels" -}}
app.kubernetes.io/name: kubernetes-image-puller
app.kubernetes.io/part-of: kubernetes-image-puller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* A JSON-valued configuration key: a string is taken as it is, anything else is rendered as JSON. */}}
{{- define "kip.json" -}}
{{- if kindIs "string" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}
