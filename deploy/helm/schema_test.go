package helm

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The schema check. kubeconform downloads its JSON schemas, which the test
// machines cannot; instead every rendered manifest is decoded strictly
// into its type from k8s.io/api (Kubernetes 1.33), the Go types the API
// server itself decodes into, as it does with fieldValidation=Strict
// (sigs.k8s.io/json: keys matched case-sensitively). A field that does not exist there (a typo,
// a wrong nesting), a value of the wrong type, a malformed quantity or
// base64 Secret value, a duplicated key, or a kind the chart should not
// render fails. It does not run the API server's validation (required
// fields, value ranges): chart_test.go checks those that matter.

// typed returns an empty object of the manifest's type, or "" and a
// reason not to check its schema.
func typed(tm metav1.TypeMeta) (any, string) {
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, ""
	case "v1 Service":
		return &corev1.Service{}, ""
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, ""
	case "v1 Secret":
		return &corev1.Secret{}, ""
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, ""
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, ""
	case "monitoring.coreos.com/v1 ServiceMonitor":
		// The Prometheus operator's CRD: not in k8s.io/api, and its Go
		// module would bring much more. chart_test.go checks its presence.
		return nil, "a CRD"
	}
	return nil, ""
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// schemaErrors decodes every document of helm template's output strictly
// into its Kubernetes type and returns what does not fit.
func schemaErrors(out []byte) []string {
	var errs []string
	for _, doc := range docSeparator.Split(string(out), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", firstLine(doc), err))
			continue
		}
		obj, skip := typed(tm)
		if obj == nil {
			if skip == "" {
				errs = append(errs, fmt.Sprintf("%s: %s %s is not a kind this chart renders", firstLine(doc), tm.APIVersion, tm.Kind))
			}
			continue
		}
		for _, err := range decodeStrict([]byte(doc), obj) {
			errs = append(errs, fmt.Sprintf("%s (%s): %v", firstLine(doc), tm.Kind, err))
		}
	}
	return errs
}

// decodeStrict decodes a YAML document into obj as the API server does
// with fieldValidation=Strict: JSON keys matched case-sensitively, unknown
// and duplicated fields reported with their paths.
func decodeStrict(doc []byte, obj any) []error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return []error{err}
	}
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return []error{err}
	}
	return strict
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// firstLine names a document by its first non-empty line, helm's
// "# Source: ..." comment.
func firstLine(doc string) string {
	for _, line := range strings.Split(doc, "\n") {
		if s := strings.TrimSpace(line); s != "" {
			return s
		}
	}
	return ""
}

// checkSchema fails the test when a rendered manifest does not fit its type.
func checkSchema(t *testing.T, out []byte) {
	t.Helper()
	if errs := schemaErrors(out); len(errs) > 0 {
		t.Fatalf("rendered manifests that do not fit the Kubernetes API types:\n%s", strings.Join(errs, "\n"))
	}
}

// TestSchemaCheck shows that the check refuses the mistakes it is meant to
// catch, and passes a correct manifest.
func TestSchemaCheck(t *testing.T) {
	const deployment = `---
# Source: gatehouse/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gh
spec:
  replicas: 2
  selector:
    matchLabels: {app: gh}
  template:
    metadata:
      labels: {app: gh}
    spec:
      containers:
        - name: gatehouse
          image: gatehouse:1
          resources:
            requests: {cpu: 100m, memory: 64Mi}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
`
	tests := []struct {
		name, old, new string
		want           string // in the error; "" for none
	}{
		{"a correct Deployment", "", "", ""},
		{"a misspelt field", "readinessProbe:", "readinessprobe:", `unknown field "spec.template.spec.containers[0].readinessprobe"`},
		{"a field at the wrong level", "      containers:", "      securityContext: {}\n      runAsNonRoot: true\n      containers:", `unknown field "spec.template.spec.runAsNonRoot"`},
		{"a string where a number goes", "replicas: 2", "replicas: two", "replicas"},
		{"a malformed quantity", "memory: 64Mi", "memory: 64 megs", "quantities must match"},
		{"a duplicated key", "  replicas: 2", "  replicas: 2\n  replicas: 3", `"replicas" already set`},
		{"a kind the chart does not render", "kind: Deployment", "kind: StatefulSet", "not a kind this chart renders"},
		{"a Secret value that is not base64", "", "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token.key: not base64!}\n", "illegal base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(deployment, tc.old, tc.new, 1)
			if tc.old == "" {
				doc = deployment + tc.new
			}
			errs := strings.Join(schemaErrors([]byte(doc)), "\n")
			if tc.want == "" && errs != "" || !strings.Contains(errs, tc.want) {
				t.Fatalf("errors %q, want one with %q", errs, tc.want)
			}
		})
	}
}
