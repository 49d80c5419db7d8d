{{/* The release's name for every object. */}}
{{- define "gatehouse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.labels" -}}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gatehouse.keySecret" -}}
{{- .Values.signingKey.existingSecret | default (printf "%s-token" (include "gatehouse.fullname" .)) -}}
{{- end -}}

{{- define "gatehouse.nextKeySecret" -}}
{{- .Values.signingKey.next.existingSecret | default (printf "%s-token-next" (include "gatehouse.fullname" .)) -}}
{{- end -}}

{{/* The pods' ServiceAccount. */}}
{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "gatehouse.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
Checks of the signing key values, so a release Gatehouse would refuse to
start fails at install instead: a reference (a key held by a key service)
goes without the private key and with a refresh secret.
*/}}
{{- define "gatehouse.checkKeys" -}}
{{- $sk := .Values.signingKey -}}
{{- if and $sk.reference $sk.key -}}
{{- fail "signingKey.reference and signingKey.key: set one (with a reference the private key stays in the key service)" -}}
{{- end -}}
{{- if and $sk.next.reference $sk.next.key -}}
{{- fail "signingKey.next.reference and signingKey.next.key: set one (with a reference the private key stays in the key service)" -}}
{{- end -}}
{{- if and $sk.next.reference (not (include "gatehouse.hasNextKey" .)) -}}
{{- fail "signingKey.next.reference: set next.certificate or next.existingSecret too (the certificate of the next key)" -}}
{{- end -}}
{{- if and (or $sk.reference $sk.next.reference) (not (or .Values.refreshSecret.existingSecret .Values.refreshSecret.value)) -}}
{{- fail "refreshSecret: set existingSecret or value when signingKey.reference or signingKey.next.reference names a key service key (Gatehouse cannot derive the refresh secret from a key it never reads, and refuses to start without refresh_secret_file)" -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.hasNextKey" -}}
{{- if or .Values.signingKey.next.existingSecret .Values.signingKey.next.certificate }}true{{ end -}}
{{- end -}}

{{- define "gatehouse.refreshSecret" -}}
{{- .Values.refreshSecret.existingSecret | default (printf "%s-refresh" (include "gatehouse.fullname" .)) -}}
{{- end -}}

{{/* auth_config.yml: the user's config with the chart's paths. */}}
{{- define "gatehouse.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $token := get $cfg "token" | default dict -}}
{{- $_ := set $token "certificate" "/secrets/token/token.pem" -}}
{{- $_ := set $token "key" (.Values.signingKey.reference | default "/secrets/token/token.key") -}}
{{- if include "gatehouse.hasNextKey" . -}}
{{- $_ := set $token "next_certificate" "/secrets/token-next/token.pem" -}}
{{- $_ := set $token "next_key" (.Values.signingKey.next.reference | default "/secrets/token-next/token.key") -}}
{{- end -}}
{{- if or .Values.refreshSecret.existingSecret .Values.refreshSecret.value -}}
{{- $_ := set $token "refresh_secret_file" "/secrets/refresh/refresh-secret" -}}
{{- end -}}
{{- $_ := set $cfg "token" $token -}}
{{- if .Values.throttleStore.enabled -}}
{{- $ts := .Values.throttleStore -}}
{{- $store := dict "type" "redis" "addrs" $ts.addrs "db" $ts.db "tls" $ts.tls "timeout" $ts.timeout -}}
{{- if $ts.masterName }}{{ $_ := set $store "master_name" $ts.masterName }}{{ end -}}
{{- if $ts.username }}{{ $_ := set $store "username" $ts.username }}{{ end -}}
{{- if $ts.passwordSecret.name }}{{ $_ := set $store "password_file" "/secrets/throttle-store/password" }}{{ end -}}
{{- $throttle := get $cfg "throttle" | default dict -}}
{{- $_ := set $throttle "store" $store -}}
{{- $_ := set $cfg "throttle" $throttle -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
