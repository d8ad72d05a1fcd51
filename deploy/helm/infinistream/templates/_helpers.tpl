{{/*
The chart's name, and the <fullname> every object name starts with (63 characters at most, the
longest suffix is "-agent-peers").
*/}}
{{- define "infinistream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "infinistream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := include "infinistream.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The agents' objects: Deployment, ConfigMap, client Service, PodDisruptionBudget. */}}
{{- define "infinistream.agentName" -}}
{{- printf "%s-agent" (include "infinistream.fullname" .) }}
{{- end }}

{{- define "infinistream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. app.kubernetes.io/name is infinistream-agent, as in deploy/kubernetes/agents, so
dashboards and network policies written for one deployment path work for the other; the instance
label keeps two releases in one namespace apart.
*/}}
{{- define "infinistream.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-agent" (include "infinistream.name" .) }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "infinistream.labels" -}}
{{ include "infinistream.selectorLabels" . }}
app.kubernetes.io/part-of: infinistream
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "infinistream.chart" . }}
{{- end }}

{{- define "infinistream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "infinistream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "infinistream.agentName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the group key (and, optionally, the S3 credentials), and the key in it. */}}
{{- define "infinistream.groupKeySecretName" -}}
{{- if .Values.groupKey.value }}
{{- printf "%s-group" (include "infinistream.fullname" .) }}
{{- else }}
{{- .Values.groupKey.existingSecret.name }}
{{- end }}
{{- end }}

{{- define "infinistream.groupKeySecretKey" -}}
{{- if .Values.groupKey.value }}group-key{{ else }}{{ .Values.groupKey.existingSecret.key }}{{ end }}
{{- end }}

{{- define "infinistream.prometheusAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: "8222"
prometheus.io/path: /metrics
{{- end }}

{{/*
The variables the chart sets itself (ConfigMap and container env), and those that would break its
fixed ports and probes: config and extraEnv may not set them.
*/}}
{{- define "infinistream.managedVariables" -}}
{{- list "INFINISTREAM_GROUP_ID" "INFINISTREAM_GROUP_KEY" "INFINISTREAM_BUCKET_NAME" "INFINISTREAM_REGION" "INFINISTREAM_CONTROL_PLANE_URL" "INFINISTREAM_BATCH_WRITE" "INFINISTREAM_LOG_FORMAT" "INFINISTREAM_GRACEFUL_SHUTDOWN_TIMEOUT" "INFINISTREAM_WORKERS" "INFINISTREAM_ADVERTISE_ADDRESS" "INFINISTREAM_SERVER_NAME" "INFINISTREAM_AVAILABILITY_ZONE" "INFINISTREAM_HOST" "INFINISTREAM_PORT" "INFINISTREAM_PEER_PORT" "INFINISTREAM_HTTP_PORT" "INFINISTREAM_CONFIG" "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" | toJson }}
{{- end }}

{{/*
Checks across values that values.schema.json cannot express. Renders nothing; fails the install,
upgrade or template with a message naming the values to fix.
*/}}
{{- define "infinistream.validate" -}}
{{- $key := .Values.groupKey }}
{{- if and $key.value $key.existingSecret.name }}
{{- fail "groupKey: set either groupKey.existingSecret.name (a Secret made out of band) or groupKey.value (the chart makes the Secret), not both" }}
{{- end }}
{{- if not (or $key.value $key.existingSecret.name) }}
{{- fail "groupKey: set groupKey.existingSecret.name (and .key) to a Secret holding the group key, or groupKey.value" }}
{{- end }}
{{- if and (not $key.value) (not $key.existingSecret.key) }}
{{- fail "groupKey.existingSecret.key: the key of the group key in the Secret is empty" }}
{{- end }}
{{- if and (not $key.value) (or .Values.s3Credentials.accessKeyId .Values.s3Credentials.secretAccessKey) }}
{{- fail "s3Credentials.accessKeyId/secretAccessKey only go into the Secret the chart makes (groupKey.value); with groupKey.existingSecret put them in that Secret" }}
{{- end }}
{{- if and (or .Values.s3Credentials.accessKeyId .Values.s3Credentials.secretAccessKey) (not .Values.s3Credentials.fromSecret) }}
{{- fail "s3Credentials: accessKeyId/secretAccessKey are set but fromSecret is false, so the agents would never read them" }}
{{- end }}
{{- if regexMatch "(?i)(secret_access_key|secret_key|session_token|service_account_key|access_key|account_key|master_key|client_secret|sas_key|sas_token)=" .Values.bucketUrl }}
{{- fail "bucketUrl: keep credentials out of the bucket URL (it lands in a ConfigMap): use s3Credentials or the pods' workload identity" }}
{{- end }}
{{- $timeout := int .Values.gracefulShutdownTimeoutSeconds }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if ge $timeout $grace }}
{{- fail (printf "gracefulShutdownTimeoutSeconds (%d) must be below terminationGracePeriodSeconds (%d): the agent must finish its drain before the kubelet's SIGKILL" $timeout $grace) }}
{{- end }}
{{- $window := toString .Values.batchWrite }}
{{- $ms := 0.0 }}
{{- if hasSuffix "ms" $window }}
{{- $ms = float64 (trimSuffix "ms" $window) }}
{{- else if hasSuffix "s" $window }}
{{- $ms = mulf (float64 (trimSuffix "s" $window)) 1000 }}
{{- else }}
{{- $ms = float64 $window }}
{{- end }}
{{- if or (lt $ms 50.0) (gt $ms 500.0) }}
{{- fail (printf "batchWrite (%s) is out of range: the valid range is 50ms–500ms" $window) }}
{{- end }}
{{- $managed := include "infinistream.managedVariables" . | fromJsonArray }}
{{- range $name, $_ := .Values.config }}
{{- if has $name $managed }}
{{- fail (printf "config.%s: the chart sets this variable itself; use its value (see README.md) instead" $name) }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if has .name $managed }}
{{- fail (printf "extraEnv %s: the chart sets this variable itself; use its value (see README.md) instead" .name) }}
{{- end }}
{{- if hasKey $.Values.config .name }}
{{- fail (printf "extraEnv %s: also set in config; set it in one place" .name) }}
{{- end }}
{{- end }}
{{- end }}
