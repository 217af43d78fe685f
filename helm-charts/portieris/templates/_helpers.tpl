{{/*
Names are fixed, not prefixed with the release name: the chart installs
cluster-scoped objects (CRDs, a webhook configuration, a ClusterRole), so one
release per cluster; and the serving certificate names the Service
portieris.<namespace>.svc, as Portieris' gencerts does.
*/}}
{{- define "portieris.name" -}}portieris{{- end -}}
{{- define "portieris.certSecret" -}}portieris-certs{{- end -}}
{{- define "portieris.trustedCAConfigMap" -}}portieris-trusted-ca{{- end -}}
{{- define "portieris.sigstoreTrustRootsSecret" -}}portieris-sigstore-trust-roots{{- end -}}
{{- define "portieris.trustStateConfigMap" -}}portieris-trust-state{{- end -}}
{{- define "portieris.webhookConfiguration" -}}image-admission-config{{- end -}}

{{- define "portieris.serviceHost" -}}
{{- printf "%s.%s.svc" (include "portieris.name" .) .Release.Namespace -}}
{{- end -}}

{{- define "portieris.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/* Labels that select the webhook's pods: Deployment, Service and PDB share them. */}}
{{- define "portieris.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portieris.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portieris.labels" -}}
{{ include "portieris.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "portieris.verifyTimeout" -}}
{{- if .Values.verifyTimeout -}}
{{- .Values.verifyTimeout -}}
{{- else -}}
{{- max 1 (sub (int .Values.webHooks.timeoutSeconds) 2) -}}
{{- end -}}
{{- end -}}

{{/*
Which of the three certificate modes is in use; refuses contradictory values.
*/}}
{{- define "portieris.certMode" -}}
{{- if and .Values.UseCertManager .Values.UseGeneratedCerts.enabled -}}
{{- fail "UseCertManager and UseGeneratedCerts.enabled are mutually exclusive" -}}
{{- else if .Values.UseCertManager -}}
cert-manager
{{- else if .Values.UseGeneratedCerts.enabled -}}
{{- if not (and .Values.UseGeneratedCerts.tlsCert .Values.UseGeneratedCerts.tlsKey .Values.UseGeneratedCerts.caCert) -}}
{{- fail "UseGeneratedCerts.enabled needs tlsCert, tlsKey and caCert (run the chart's gencerts script)" -}}
{{- end -}}
generated
{{- else -}}
helm
{{- end -}}
{{- end -}}

{{/*
PEMs of the serving certificate for the "generated" and "helm" modes, as JSON (exact: toYaml would drop the final newline of a PEM)
{ca, cert, key}. In "helm" mode the certificate is made once per render and
cached in .Values, so the Secret and the webhook's caBundle agree; an existing
Secret (from an earlier install) is reused so upgrades keep the certificate.
*/}}
{{- define "portieris.tls" -}}
{{- if eq (include "portieris.certMode" .) "generated" -}}
{{- dict "ca" .Values.UseGeneratedCerts.caCert "cert" .Values.UseGeneratedCerts.tlsCert "key" .Values.UseGeneratedCerts.tlsKey | toJson -}}
{{- else -}}
{{- if not (hasKey .Values "_portierisGeneratedTLS") -}}
{{- $tls := dict -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "portieris.certSecret" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") -}}
{{- $tls = dict "ca" (index $existing.data "ca.crt" | b64dec) "cert" (index $existing.data "tls.crt" | b64dec) "key" (index $existing.data "tls.key" | b64dec) -}}
{{- else -}}
{{- $name := include "portieris.name" . -}}
{{- $ns := .Release.Namespace -}}
{{- $ca := genCA (printf "%s-ca" $name) 3650 -}}
{{- $dns := list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.cluster.local" $name $ns) -}}
{{- $cert := genSignedCert (include "portieris.serviceHost" .) nil $dns 3650 $ca -}}
{{- $tls = dict "ca" $ca.Cert "cert" $cert.Cert "key" $cert.Key -}}
{{- end -}}
{{- $_ := set .Values "_portierisGeneratedTLS" $tls -}}
{{- end -}}
{{- index .Values "_portierisGeneratedTLS" | toJson -}}
{{- end -}}
{{- end -}}

{{/* Issuer reference of the serving Certificate in cert-manager mode. */}}
{{- define "portieris.issuerKind" -}}
{{- if .Values.certManagerIssuer.name -}}{{ .Values.certManagerIssuer.kind }}{{- else -}}Issuer{{- end -}}
{{- end -}}
{{- define "portieris.issuerName" -}}
{{- .Values.certManagerIssuer.name | default "portieris-ca-issuer" -}}
{{- end -}}

{{/* A LabelSelectorRequirement list given as values, checked for shape. */}}
{{- define "portieris.requirements" -}}
{{- $value := index . 0 -}}
{{- $what := index . 1 -}}
{{- if not (kindIs "slice" $value) -}}
{{- fail (printf "%s must be a list of label selector requirements ({key, operator, values})" $what) -}}
{{- end -}}
{{- range $value }}
- {{ toYaml . | nindent 2 | trim }}
{{- end -}}
{{- end -}}

{{/*
The trusted CA bundle: the platform integration's complete bundle when it gives one, else
TrustedCACert.
*/}}
{{- define "portieris.trustedCA" -}}
{{- $platform := .Values.platform | default dict -}}
{{- $platform.trustedCACerts | default .Values.TrustedCACert | default "" -}}
{{- end -}}
