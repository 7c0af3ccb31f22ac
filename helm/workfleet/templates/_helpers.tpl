{{/*
Names. Every resource name contains the release name, so two releases (one per prefix) in one
namespace never collide. Names are cut to 63 characters (label and DNS-label limits).
*/}}
{{- define "workfleet.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "workfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "workfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by every object of the release. */}}
{{- define "workfleet.labels" -}}
helm.sh/chart: {{ include "workfleet.chart" . }}
app.kubernetes.io/name: {{ include "workfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: workfleet
{{- end -}}

{{/* Selector of the release's pods (workers and the migration Job). */}}
{{- define "workfleet.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "workfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector of the worker pods only (not the migration Job's). */}}
{{- define "workfleet.selectorLabels" -}}
{{ include "workfleet.releaseSelectorLabels" . }}
app.kubernetes.io/component: worker
{{- end -}}

{{/* The prefix, required, with a message that says how to give it. */}}
{{- define "workfleet.prefix" -}}
{{- required "prefix is required: install one release per type prefix, e.g. helm install billing helm/workfleet --set prefix='billing.%'" .Values.prefix -}}
{{- end -}}

{{/* The annotation recording which prefix the release serves (label values cannot hold `%`). */}}
{{- define "workfleet.prefixAnnotation" -}}
workfleet/prefix: {{ include "workfleet.prefix" . | quote }}
{{- end -}}

{{- define "workfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "workfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "workfleet.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "workfleet.databaseSecret" -}}
{{- required "database.existingSecret is required: the name of a Secret holding the PostgreSQL URL (see docs/deploy.md)" .Values.database.existingSecret -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the drain, rounded up, plus a margin for release and exit. */}}
{{- define "workfleet.terminationGracePeriodSeconds" -}}
{{- add (ceil .Values.drainTimeout | int) .Values.terminationGraceMarginSeconds -}}
{{- end -}}

{{/*
Environment shared by the worker and the migration Job: the DSN from the Secret and the schema.
*/}}
{{- define "workfleet.databaseEnv" -}}
- name: WORKFLEET_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "workfleet.databaseSecret" . }}
      key: {{ .Values.database.secretKey }}
- name: WORKFLEET_SCHEMA
  value: {{ .Values.schema | quote }}
- name: WORKFLEET_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: WORKFLEET_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* SQL quoting for the KEDA query: a string literal ('' doubles ') and an identifier. */}}
{{- define "workfleet.sqlLiteral" -}}
{{- printf "'%s'" (replace "'" "''" .) -}}
{{- end -}}

{{- define "workfleet.sqlIdentifier" -}}
{{- printf "\"%s\"" (replace "\"" "\"\"" .) -}}
{{- end -}}

{{/*
The prefix as the claim matches it (workfleet.patterns.TypePattern): a trailing `%` is the only
wildcard, every other character is literal, so `\`, `%` and `_` are escaped for LIKE (default
escape character `\`); without a trailing `%` the pattern is one exact type.
*/}}
{{- define "workfleet.sqlTypeFilter" -}}
{{- $prefix := include "workfleet.prefix" . -}}
{{- if hasSuffix "%" $prefix -}}
{{- $literal := trimSuffix "%" $prefix | replace "\\" "\\\\" | replace "%" "\\%" | replace "_" "\\_" -}}
{{- printf "r.type LIKE %s" (include "workfleet.sqlLiteral" (printf "%s%%" $literal)) -}}
{{- else -}}
{{- printf "r.type = %s" (include "workfleet.sqlLiteral" $prefix) -}}
{{- end -}}
{{- end -}}

{{- define "workfleet.kedaTarget" -}}
{{- .Values.keda.targetRunsPerReplica | default .Values.concurrency | int -}}
{{- end -}}

{{/*
The KEDA query: this prefix's runnable runs, read from the schema's `workfleet_queued` view, the
one definition of the claim's eligibility (pending, not deleted, type not disabled by a live
workflow_registry row) that the worker's claim reads too; plus due and type matched. The count stops at
maxReplicaCount x target: beyond that the HPA asks for maxReplicaCount anyway, and a huge
backlog costs no more to count than a full fleet.
*/}}
{{- define "workfleet.kedaQuery" -}}
{{- $schema := include "workfleet.sqlIdentifier" .Values.schema -}}
{{- $limit := mul .Values.keda.maxReplicaCount (include "workfleet.kedaTarget" . | int) -}}
SELECT count(*) FROM (
    SELECT 1
    FROM {{ $schema }}.workfleet_queued r
    WHERE r.run_at <= now()
      AND {{ include "workfleet.sqlTypeFilter" . }}
    LIMIT {{ $limit }}
) AS runnable
{{- end -}}

{{- define "workfleet.kedaSecret" -}}
{{- default (include "workfleet.databaseSecret" .) .Values.keda.connection.existingSecret -}}
{{- end -}}

{{- define "workfleet.kedaSecretKey" -}}
{{- default .Values.database.secretKey .Values.keda.connection.secretKey -}}
{{- end -}}

{{/* Selector of the API pods only. */}}
{{- define "workfleet.apiSelectorLabels" -}}
{{ include "workfleet.releaseSelectorLabels" . }}
app.kubernetes.io/component: api
{{- end -}}
