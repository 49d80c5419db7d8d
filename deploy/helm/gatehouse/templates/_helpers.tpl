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

{{/* The container image: "-pkcs11" appended to the tag for image.flavor pkcs11. */}}
{{- define "gatehouse.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- if and (eq (include "gatehouse.flavor" .) "pkcs11") (not (hasSuffix "-pkcs11" $tag)) -}}
{{- $tag = printf "%s-pkcs11" $tag -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{- define "gatehouse.flavor" -}}
{{- .Values.image.flavor | default "" -}}
{{- end -}}

{{/*
Checks of a key in an HSM: a pkcs11: reference needs the -pkcs11 image (the
default one cannot load a module) and its PIN file (pin-source) mounted, at
hsm.pinPath from hsm.pinSecret or under one of extraVolumeMounts; otherwise
every pod would fail at startup.
*/}}
{{- define "gatehouse.checkHSM" -}}
{{- $flavor := include "gatehouse.flavor" . -}}
{{- if not (has $flavor (list "" "pkcs11")) -}}
{{- fail (printf "image.flavor %q: \"\" (the default image) or pkcs11" $flavor) -}}
{{- end -}}
{{- $hsm := .Values.hsm -}}
{{- if $hsm.pinSecret.name -}}
{{- $dir := dir ($hsm.pinPath | default "") -}}
{{- if or (not (isAbs ($hsm.pinPath | default ""))) (eq $dir "/") (has $dir (list "/config" "/tmp" "/secrets" "/secrets/token" "/secrets/token-next" "/secrets/refresh" "/secrets/throttle-store")) -}}
{{- fail (printf "hsm.pinPath %q: an absolute path whose directory is the PIN's alone (not / or one the chart mounts), e.g. /secrets/hsm/pin" ($hsm.pinPath | default "")) -}}
{{- end -}}
{{- end -}}
{{- range $name, $ref := dict "signingKey.reference" .Values.signingKey.reference "signingKey.next.reference" .Values.signingKey.next.reference -}}
{{- if hasPrefix "pkcs11:" ($ref | default "") -}}
{{- if ne $flavor "pkcs11" -}}
{{- fail (printf "%s: a pkcs11: key needs image.flavor=pkcs11 (the -pkcs11 image; the default one is built without PKCS #11 support and cannot load the HSM's module)" $name) -}}
{{- end -}}
{{- $pin := regexFind "pin-source=file:[^&;#]*" $ref | trimPrefix "pin-source=file:" -}}
{{- if not $pin -}}
{{- fail (printf "%s: a pkcs11: key needs pin-source=file:/path (the PIN file, hsm.pinPath %s)" $name $hsm.pinPath) -}}
{{- end -}}
{{- $mounted := and $hsm.pinSecret.name (eq $pin $hsm.pinPath) -}}
{{- range $.Values.extraVolumeMounts -}}
{{- if or (eq $pin .mountPath) (hasPrefix (printf "%s/" (trimSuffix "/" .mountPath)) $pin) -}}
{{- $mounted = true -}}
{{- end -}}
{{- end -}}
{{- if not $mounted -}}
{{- fail (printf "%s: its PIN file %s (pin-source) is not mounted: set hsm.pinSecret.name (the Secret with the PIN, mounted at hsm.pinPath %s) and pin-source=file:%s, or mount %s with extraVolumes and extraVolumeMounts" $name $pin $hsm.pinPath $hsm.pinPath $pin) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
