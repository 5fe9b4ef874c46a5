{{- /*
Named templates the generated templates include (build/chart puts them where
deploy/'s objects leave room). Each writes YAML at column 0, or nothing.
*/ -}}

{{/* Labels on every object besides deploy/'s own (selectors keep deploy/'s). */}}
{{- define "drillerd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest pins it. */}}
{{- define "drillerd.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- if .Values.image.digest -}}
{{- $ref = printf "%s@%s" $ref .Values.image.digest -}}
{{- end -}}
{{ $ref }}
{{- end }}

{{/* Replicas; more than one only with leader election. */}}
{{- define "drillerd.replicas" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElect) -}}
{{- fail (printf "replicas: %d needs leaderElect: true, or two drillerds would run the same drills; set replicas: 1 to run without leader election" (int .Values.replicas)) -}}
{{- end -}}
{{ .Values.replicas }}
{{- end }}

{{/* Without leader election the old pod goes before the new one starts. */}}
{{- define "drillerd.strategy" -}}
{{- if not .Values.leaderElect -}}
strategy:
  type: Recreate
{{- end -}}
{{- end }}

{{- define "drillerd.leaderElectFlag" -}}
{{- if .Values.leaderElect -}}--leader-elect{{- else -}}--leader-elect=false{{- end -}}
{{- end }}

{{/* The Secret of the API certificate, or nothing for a self-signed one. */}}
{{- define "drillerd.tlsSecretName" -}}
{{- if .Values.api.tls.secretName -}}
{{ .Values.api.tls.secretName }}
{{- else if .Values.api.tls.certManager.enabled -}}
drillerd-api-tls
{{- end -}}
{{- end }}

{{/* serve flags after deploy/'s, as args entries. */}}
{{- define "drillerd.serveFlags" -}}
{{- with .Values.api.audiences }}
- --api-audiences={{ join "," . }}
{{- end }}
{{- with .Values.api.tlsMinVersion }}
- --tls-min-version={{ . }}
{{- end }}
{{- if include "drillerd.tlsSecretName" . }}
- --tls-cert-file=/etc/drillerd/tls/tls.crt
- --tls-key-file=/etc/drillerd/tls/tls.key
{{- end }}
{{- with .Values.startingDeadline }}
- --starting-deadline={{ . }}
{{- end }}
{{- with .Values.sweepInterval }}
- --sweep-interval={{ . }}
{{- end }}
{{- with .Values.logLevel }}
- --log-level={{ . }}
{{- end }}
{{- with .Values.sandboxLabels }}
{{- $labels := list }}
{{- range $k, $v := . }}{{ $labels = append $labels (printf "%s=%s" $k $v) }}{{ end }}
- --sandbox-labels={{ join "," $labels }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The container's mounts: the API certificate. */}}
{{- define "drillerd.volumeMounts" -}}
{{- if include "drillerd.tlsSecretName" . }}
volumeMounts:
  - name: api-tls
    mountPath: /etc/drillerd/tls
    readOnly: true
{{- end }}
{{- end }}

{{- define "drillerd.podAnnotations" -}}
{{- with .Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The pod's scheduling, pull secrets and volumes. */}}
{{- define "drillerd.podSpec" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if include "drillerd.tlsSecretName" . }}
volumes:
  - name: api-tls
    secret:
      secretName: {{ include "drillerd.tlsSecretName" . }}
{{- end }}
{{- end }}
