{{/* Chart name, overridable with nameOverride. */}}
{{- define "modelyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: fullnameOverride, the release name when it contains the chart name, else <release>-<chart>. */}}
{{- define "modelyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's resources; takes (dict "context" $ "component" "minio"). */}}
{{- define "modelyard.componentName" -}}
{{- printf "%s-%s" (include "modelyard.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "modelyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels; takes (dict "context" $ "component" "minio"). */}}
{{- define "modelyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelyard.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Common labels; takes (dict "context" $ "component" "minio"). */}}
{{- define "modelyard.labels" -}}
helm.sh/chart: {{ include "modelyard.chart" .context }}
{{ include "modelyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: modelyard
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Image reference from an image block; takes (dict "image" .Values.x.image "default" <fallback block>). */}}
{{- define "modelyard.image" -}}
{{- $fallback := .default | default dict -}}
{{- $repository := .image.repository | default $fallback.repository -}}
{{- $digest := .image.digest | default $fallback.digest -}}
{{- $tag := .image.tag | default $fallback.tag | default .appVersion -}}
{{- if $digest -}}
{{- printf "%s@%s" $repository $digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}
{{- end -}}

{{/* Pod security context: the chart-wide restricted defaults merged with a component's overrides; takes (dict "context" $ "override" .Values.x.podSecurityContext). */}}
{{- define "modelyard.podSecurityContext" -}}
{{- toYaml (mergeOverwrite (deepCopy .context.Values.podSecurityContext) (.override | default dict)) -}}
{{- end -}}

{{/* Container security context: the chart-wide restricted defaults merged with a component's overrides; takes (dict "context" $ "override" .Values.x.securityContext). */}}
{{- define "modelyard.containerSecurityContext" -}}
{{- toYaml (mergeOverwrite (deepCopy .context.Values.containerSecurityContext) (.override | default dict)) -}}
{{- end -}}

{{/* Shared pod-spec lines: no API token, pull secrets, security context; takes (dict "context" $ "override" <podSecurityContext overrides>). */}}
{{- define "modelyard.podDefaults" -}}
automountServiceAccountToken: false
{{- with .context.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "modelyard.podSecurityContext" . | nindent 2 }}
{{- end -}}

{{/* A credential for a chart-made Secret: the value given in values, else the one in the Secret already in the cluster (so it
survives helm upgrade), else a new random one; takes (dict "context" $ "name" <secret> "key" <key> "length" 32 "value" <from values>).
Without a cluster (helm template, Argo CD) lookup finds nothing: such renders need the value or the credential's existingSecret. */}}
{{- define "modelyard.secretValue" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .context.Release.Namespace .name -}}
{{- $data := dig "data" (dict) ($existing | default dict) -}}
{{- if hasKey $data .key -}}
{{- index $data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int (.length | default 32)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* True ("true") when the bundled MinIO is used. */}}
{{- define "modelyard.minioEnabled" -}}
{{- if not .Values.objectStore.external.enabled -}}true{{- end -}}
{{- end -}}

{{/* In-cluster DNS name of a component's Service; takes (dict "context" $ "component" "minio"). */}}
{{- define "modelyard.serviceHost" -}}
{{- printf "%s.%s.svc" (include "modelyard.componentName" .) .context.Release.Namespace -}}
{{- end -}}

{{/* S3 endpoint URL (with scheme) used by MLflow, the setup Job and the dataset Secret. */}}
{{- define "modelyard.s3Endpoint" -}}
{{- if .Values.objectStore.external.enabled -}}
{{- required "objectStore.external.endpoint is required when objectStore.external.enabled=true" .Values.objectStore.external.endpoint | trimSuffix "/" -}}
{{- else -}}
{{- printf "http://%s:%d" (include "modelyard.serviceHost" (dict "context" . "component" "minio")) (int .Values.minio.service.port) -}}
{{- end -}}
{{- end -}}

{{/* MLflow tracking URI handed to the pipeline: pipeline.trackingUri, else the bundled MLflow Service. */}}
{{- define "modelyard.trackingUri" -}}
{{- if .Values.pipeline.trackingUri -}}
{{- .Values.pipeline.trackingUri -}}
{{- else -}}
{{- printf "http://%s:%d" (include "modelyard.serviceHost" (dict "context" . "component" "mlflow")) (int .Values.mlflow.service.port) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret with MinIO's root credentials (used only by MinIO and the setup Job): minio.auth.existingSecret, else the chart's. */}}
{{- define "modelyard.minioRootSecret" -}}
{{- .Values.minio.auth.existingSecret | default (printf "%s-root" (include "modelyard.componentName" (dict "context" . "component" "minio"))) -}}
{{- end -}}

{{/* Name of the Secret with MLflow's S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */}}
{{- define "modelyard.mlflowS3Secret" -}}
{{- if .Values.objectStore.external.enabled -}}
{{- required "objectStore.external.credentialsSecret is required when objectStore.external.enabled=true" .Values.objectStore.external.credentialsSecret -}}
{{- else -}}
{{- .Values.mlflow.s3.existingSecret | default (printf "%s-s3" (include "modelyard.componentName" (dict "context" . "component" "mlflow"))) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret with Argo's S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), named by the artifact repository. */}}
{{- define "modelyard.argoS3Secret" -}}
{{- if .Values.objectStore.external.enabled -}}
{{- required "objectStore.external.credentialsSecret is required when objectStore.external.enabled=true" .Values.objectStore.external.credentialsSecret -}}
{{- else -}}
{{- .Values.argo.artifactRepository.existingSecret | default (printf "%s-argo-s3" (include "modelyard.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret with the PostgreSQL password: postgresql.auth.existingSecret, else the chart's. */}}
{{- define "modelyard.postgresqlSecret" -}}
{{- .Values.postgresql.auth.existingSecret | default (include "modelyard.componentName" (dict "context" . "component" "postgresql")) -}}
{{- end -}}

{{/* Name of the dataset Secret workflow pods read (envFrom, optional): datasets.secret.existingSecret, else datasets.secret.name. */}}
{{- define "modelyard.datasetSecret" -}}
{{- .Values.datasets.secret.existingSecret | default .Values.datasets.secret.name -}}
{{- end -}}

{{/* True ("true") when the bundled MinIO has a dataset user: the chart creates its Secret or the user gives one. */}}
{{- define "modelyard.datasetUser" -}}
{{- if and (include "modelyard.minioEnabled" .) (or .Values.datasets.secret.create .Values.datasets.secret.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Checkov skip annotations shared by every workload, each with its reason; takes a list of extra "CKV_ID=reason" strings. */}}
{{- define "modelyard.checkovSkips" -}}
{{- $skips := list
  "CKV_K8S_43=Images are pinned by tag; kind-loaded local images have no registry digest. Set <component>.image.digest to pin by digest."
  "CKV_K8S_15=IfNotPresent is required for images loaded into kind and is safe with immutable version tags; set image.pullPolicy to Always if you prefer."
-}}
{{- range $i, $skip := concat $skips (. | default list) }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end -}}

{{/* A generated Argo manifest from files/, re-emitted with values applied (never passed through tpl, so Argo's {{...}} expressions survive); takes (dict "context" $ "path" "files/workflows/train.yaml"). */}}
{{- define "modelyard.argoManifest" -}}
{{- $ := .context -}}
{{- $doc := fromYaml ($.Files.Get .path) -}}
{{- if or (not $doc) (hasKey $doc "Error") -}}
{{- fail (printf "%s is not a single YAML document: %v" .path (get ($doc | default dict) "Error")) -}}
{{- end -}}
{{- $meta := $doc.metadata | default dict -}}
{{- $_ := set $meta "namespace" $.Release.Namespace -}}
{{- $_ = set $meta "labels" (merge (include "modelyard.labels" (dict "context" $ "component" "pipeline") | fromYaml) ($meta.labels | default dict)) -}}
{{- $_ = set $doc "metadata" $meta -}}
{{- $spec := $doc.spec | default dict -}}
{{- $wfSpec := $spec -}}
{{- if eq $doc.kind "CronWorkflow" -}}
{{- $wfSpec = $spec.workflowSpec | default dict -}}
{{- $cron := index $.Values.pipeline.cronWorkflows ($meta.name | default "") | default dict -}}
{{- if $cron.schedules -}}{{- $_ = set $spec "schedules" $cron.schedules -}}{{- end -}}
{{- if $cron.timezone -}}{{- $_ = set $spec "timezone" $cron.timezone -}}{{- end -}}
{{- if hasKey $cron "suspend" -}}{{- $_ = set $spec "suspend" $cron.suspend -}}{{- end -}}
{{- $_ = set $spec "workflowSpec" $wfSpec -}}
{{- end -}}
{{- /* The generator names two accounts: modelyard-workflow (steps) and modelyard-submitter (the monitor's submit
step, set on its template); each becomes its serviceAccounts.<name>.name, any other account is left alone. */ -}}
{{- $accounts := dict "modelyard-workflow" $.Values.serviceAccounts.workflow.name "modelyard-submitter" $.Values.serviceAccounts.submitter.name -}}
{{- $account := $wfSpec.serviceAccountName | default "" -}}
{{- if hasKey $accounts $account -}}
{{- $_ = set $wfSpec "serviceAccountName" (index $accounts $account) -}}
{{- else if and (not $account) (not $wfSpec.workflowTemplateRef) -}}
{{- $_ = set $wfSpec "serviceAccountName" $.Values.serviceAccounts.workflow.name -}}
{{- end -}}
{{- /* The generator names the dataset Secret modelyard-dataset-s3; it becomes the one modelyard.datasetSecret names. */ -}}
{{- $datasetSecret := include "modelyard.datasetSecret" $ -}}
{{- range $template := $wfSpec.templates | default list -}}
{{- if hasKey $accounts ($template.serviceAccountName | default "") -}}
{{- $_ = set $template "serviceAccountName" (index $accounts $template.serviceAccountName) -}}
{{- end -}}
{{- range $from := dig "container" "envFrom" (list) $template -}}
{{- if eq (dig "secretRef" "name" "" $from) "modelyard-dataset-s3" -}}
{{- $_ = set $from.secretRef "name" $datasetSecret -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $overrides := dict "image" (include "modelyard.image" (dict "image" $.Values.pipeline.image "appVersion" $.Chart.AppVersion)) "tracking-uri" (include "modelyard.trackingUri" $) -}}
{{- with $.Values.pipeline.dataset -}}{{- $_ = set $overrides "dataset" . -}}{{- end -}}
{{- $overrides = merge (deepCopy ($.Values.pipeline.parameters | default dict)) $overrides -}}
{{- if eq $doc.kind "CronWorkflow" -}}
{{- $cron := index $.Values.pipeline.cronWorkflows ($meta.name | default "") | default dict -}}
{{- $declared := list -}}
{{- range $param := dig "arguments" "parameters" (list) $wfSpec -}}{{- $declared = append $declared $param.name -}}{{- end -}}
{{- range $name, $_ := $cron.parameters | default dict -}}
{{- if not (has $name $declared) -}}
{{- fail (printf "pipeline.cronWorkflows.%s.parameters.%s: %s has no parameter %q (it has: %s)" $meta.name $name $meta.name $name (join ", " $declared)) -}}
{{- end -}}
{{- end -}}
{{- $overrides = merge (deepCopy ($cron.parameters | default dict)) $overrides -}}
{{- end -}}
{{- range $param := dig "arguments" "parameters" (list) $wfSpec -}}
{{- if hasKey $overrides $param.name -}}
{{- $_ = set $param "value" (toString (index $overrides $param.name)) -}}
{{- end -}}
{{- end -}}
{{- $_ = set $doc "spec" $spec -}}
{{- toYaml $doc -}}
{{- end -}}

{{/* Name of one served model's objects (Rollout, TraefikService, Middleware, IngressRoute; its Services add -stable/-canary): <fullname>-serve-<model>; takes (dict "context" $ "model" "churn"). */}}
{{- define "modelyard.servingName" -}}
{{- printf "%s-serve-%s" (include "modelyard.fullname" .context) .model | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one served model's pods; takes (dict "context" $ "model" "churn"). */}}
{{- define "modelyard.servingSelectorLabels" -}}
{{ include "modelyard.selectorLabels" (dict "context" .context "component" "serving") }}
modelyard.dev/model: {{ .model }}
{{- end -}}

{{/* Common labels of one served model's objects; takes (dict "context" $ "model" "churn"). */}}
{{- define "modelyard.servingLabels" -}}
{{ include "modelyard.labels" (dict "context" .context "component" "serving") }}
modelyard.dev/model: {{ .model }}
{{- end -}}

{{/* Image of the serving pods: serving.image, else (its repository empty) pipeline.image, the trainer image `modelyard serve` ships in. */}}
{{- define "modelyard.servingImage" -}}
{{- $fallback := dict -}}
{{- if not .Values.serving.image.repository -}}
{{- $fallback = .Values.pipeline.image -}}
{{- end -}}
{{- include "modelyard.image" (dict "image" .Values.serving.image "default" $fallback "appVersion" .Chart.AppVersion) -}}
{{- end -}}
