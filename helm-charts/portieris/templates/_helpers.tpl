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
{{- if include "portieris.ownIssuer" . -}}Issuer{{- else -}}{{ .Values.certManagerIssuer.kind }}{{- end -}}
{{- end -}}
{{- define "portieris.issuerName" -}}
{{- if include "portieris.ownIssuer" . -}}portieris-ca-issuer{{- else -}}{{ .Values.certManagerIssuer.name }}{{- end -}}
{{- end -}}

{{/*
A label selector given as values: a list of LabelSelectorRequirements (this chart's shape) or a
LabelSelector map {matchLabels, matchExpressions} (IBM Portieris' shape of
ObjectSelectorAdmissionSkip); null means none. JSON {matchLabels, matchExpressions}.
*/}}
{{- define "portieris.selector" -}}
{{- $value := index . 0 -}}
{{- $what := index . 1 -}}
{{- $labels := dict -}}
{{- $expressions := list -}}
{{- if kindIs "slice" $value -}}
{{- $expressions = $value -}}
{{- else if kindIs "map" $value -}}
{{- $labels = $value.matchLabels | default dict -}}
{{- $expressions = $value.matchExpressions | default list -}}
{{- else if not (kindIs "invalid" $value) -}}
{{- fail (printf "%s must be a list of label selector requirements ({key, operator, values}) or a label selector ({matchLabels, matchExpressions})" $what) -}}
{{- end -}}
{{- dict "matchLabels" $labels "matchExpressions" $expressions | toJson -}}
{{- end -}}

{{/*
The operator's TrustedCACert as PEM: a PEM bundle as given, or base64 of one (the form of the
StarlingX portieris application) decoded. Anything else is refused: written as it is, the webhook
could not load it and would not start.
*/}}
{{- define "portieris.trustedCACert" -}}
{{- $value := .Values.TrustedCACert | default "" | toString -}}
{{- $pem := $value -}}
{{- if and $value (not (contains "-----BEGIN" $value)) -}}
{{- $pem = regexReplaceAll "\\s+" $value "" | b64dec -}}
{{- if not (contains "-----BEGIN CERTIFICATE-----" $pem) -}}
{{- fail "TrustedCACert is neither a PEM bundle of CA certificates nor base64 of one: give the certificates in PEM (-----BEGIN CERTIFICATE-----)" -}}
{{- end -}}
{{- end -}}
{{- if $pem -}}
{{- if not (contains "-----BEGIN CERTIFICATE-----" $pem) -}}
{{- fail "TrustedCACert holds no -----BEGIN CERTIFICATE----- block: give the CA certificates in PEM" -}}
{{- end -}}
{{- if contains "PRIVATE KEY" $pem -}}
{{- fail "TrustedCACert holds a private key: give only the CA certificates" -}}
{{- end -}}
{{- end -}}
{{- $pem -}}
{{- end -}}

{{/*
The trusted CA bundle: the platform integration's complete bundle when it gives one, else
TrustedCACert (decoded).
*/}}
{{- define "portieris.trustedCA" -}}
{{- $platform := .Values.platform | default dict -}}
{{- $operator := include "portieris.trustedCACert" . -}}
{{- $platform.trustedCACerts | default $operator | default "" -}}
{{- end -}}

{{/*
Pinned notary roots (pinnedTrustRoots) as JSON {args, certificates}: the --pinned-trust-root
arguments, and the PEM of each certificate pin by its key in the ConfigMap
portieris-pinned-trust-roots, which is mounted at portieris.pinnedRootsDir.
*/}}
{{- define "portieris.pinnedRootsDir" -}}/etc/portieris/pinned-trust-roots{{- end -}}
{{- define "portieris.pins" -}}
{{- $args := list -}}
{{- $certificates := dict -}}
{{- range $index, $pin := .Values.pinnedTrustRoots | default list -}}
{{- if and $pin.keyID $pin.certificate -}}
{{- fail (printf "pinnedTrustRoots[%d] gives both keyID and certificate: give one per entry (two entries for one server pin both)" $index) -}}
{{- end -}}
{{- if $pin.keyID -}}
{{- $args = append $args (printf "%s=%s" $pin.server (lower $pin.keyID)) -}}
{{- else if $pin.certificate -}}
{{- $key := printf "root-%d.pem" $index -}}
{{- $_ := set $certificates $key $pin.certificate -}}
{{- $args = append $args (printf "%s=%s/%s" $pin.server (include "portieris.pinnedRootsDir" $) $key) -}}
{{- else -}}
{{- fail (printf "pinnedTrustRoots[%d] needs a keyID or a certificate" $index) -}}
{{- end -}}
{{- end -}}
{{- dict "args" $args "certificates" $certificates | toJson -}}
{{- end -}}
{{- define "portieris.pinnedRootsConfigMap" -}}portieris-pinned-trust-roots{{- end -}}

{{/*
IBM Portieris' value shapes (chart v0.14), normalised.
*/}}

{{/* clusterPolicy.allowedRepositories as repositories: JSON {repositories: [{name, policy}]}. */}}
{{- define "portieris.allowedRepositories" -}}
{{- $repositories := list -}}
{{- range (.Values.clusterPolicy | default dict).allowedRepositories | default list -}}
{{- if kindIs "string" . -}}
{{- $repositories = append $repositories (dict "name" . "policy" (dict)) -}}
{{- else -}}
{{- $repositories = append $repositories (dict "name" .name "policy" (.policy | default (dict))) -}}
{{- end -}}
{{- end -}}
{{- dict "repositories" $repositories | toJson -}}
{{- end -}}

{{/* imagePullSecrets, and IBM Portieris' image.pullSecret: JSON {secrets: [...]}. */}}
{{- define "portieris.imagePullSecrets" -}}
{{- $secrets := .Values.imagePullSecrets | default list -}}
{{- with (.Values.image | default dict).pullSecret -}}
{{- $secrets = append $secrets (dict "name" .) | uniq -}}
{{- end -}}
{{- dict "secrets" $secrets | toJson -}}
{{- end -}}

{{/* priorityClassName, or IBM Portieris' priorityClass when given ("" for none). */}}
{{- define "portieris.priorityClassName" -}}
{{- if not (kindIs "invalid" .Values.priorityClass) -}}
{{- .Values.priorityClass -}}
{{- else -}}
{{- .Values.priorityClassName -}}
{{- end -}}
{{- end -}}

{{/*
Whether the chart creates the cert-manager issuer ("true") or uses certManagerIssuer.{kind,name}
(""). IBM Portieris' certManagerIssuer.skipCreation decides when given, else an empty name.
*/}}
{{- define "portieris.ownIssuer" -}}
{{- $issuer := .Values.certManagerIssuer | default dict -}}
{{- if kindIs "bool" $issuer.skipCreation -}}
{{- if not $issuer.skipCreation -}}
true
{{- else if not $issuer.name -}}
{{- fail "certManagerIssuer.skipCreation: true needs certManagerIssuer.name, the existing issuer to use" -}}
{{- end -}}
{{- else if not $issuer.name -}}
true
{{- end -}}
{{- end -}}

{{/*
Values of IBM Portieris' chart and of the upstream StarlingX portieris application that this
chart cannot honour: every one given is refused at once, each with what to write instead. The
defaults of IBM's values that mean what this chart does anyway are accepted.
*/}}
{{- define "portieris.foreignValues" -}}
{{- $problems := list -}}
{{- $image := .Values.image | default dict -}}
{{- if or $image.host $image.image -}}
{{- $problems = append $problems "image.host and image.image name IBM Portieris' image, which does not run with this chart: remove them and set image.repository (and image.tag) to this webhook's image, e.g. --set image.repository=registry.example.com/portieris/portieris-webhook --set image.tag=0.1.0 (see \"The image\" in the chart README)" -}}
{{- end -}}
{{- if not (kindIs "invalid" .Values.PolicySet) -}}
{{- $problems = append $problems "PolicySet: remove it. This chart always installs its default policies (defaultPolicies.releaseNamespace, defaultPolicies.kubeSystem) and the ClusterImagePolicy of clusterPolicy.allowedRepositories (default [\"*\"]: every image admitted where no ImagePolicy applies). IBM's PolicySet None installed no ClusterImagePolicy; to keep that, set clusterPolicy.allowedRepositories: []. For IBM's IKS policies, write them as ImagePolicies" -}}
{{- end -}}
{{- if .Values.SkipSecretCreation -}}
{{- $problems = append $problems "SkipSecretCreation: true: remove it. The chart makes Secret portieris-certs itself: use UseCertManager: true, or UseGeneratedCerts with your PEMs (see Certificates)" -}}
{{- end -}}
{{- if .Values.useHostNetwork -}}
{{- $problems = append $problems "useHostNetwork: true is not supported: remove it (the kube-apiserver must reach the webhook's Service on the pod network)" -}}
{{- end -}}
{{- if not (kindIs "invalid" .Values.images) -}}
{{- $problems = append $problems "images is the upstream StarlingX application's image list: remove it and set image.repository and image.tag" -}}
{{- end -}}
{{- if not (kindIs "invalid" .Values.namespace) -}}
{{- $problems = append $problems "namespace: remove it. The chart installs into the release namespace (helm --namespace)" -}}
{{- end -}}
{{- range list "livenessProbe" "readinessProbe" -}}
{{- if not (kindIs "invalid" (index $.Values .)) -}}
{{- $problems = append $problems (printf "%s: remove it. The chart's probes are fixed (liveness every 10 s, readiness every 5 s, on the webhook's /health endpoints)" .) -}}
{{- end -}}
{{- end -}}
{{- range list "PostUpgradePolicy" "ReapplyAdmissionWebhook" -}}
{{- if not (kindIs "invalid" (index $.Values .)) -}}
{{- $problems = append $problems (printf "%s is the upstream StarlingX application's bookkeeping: remove it (set webHooks.failurePolicy for another failure policy)" .) -}}
{{- end -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "values this chart does not take (see \"Coming from IBM Portieris\" in the chart README):\n  - %s" (join "\n  - " $problems)) -}}
{{- end -}}
{{- end -}}
