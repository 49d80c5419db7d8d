package oidctest

import "time"

// GitHubClaims returns the claim set of a GitHub Actions OIDC token (the
// fields GitHub's OpenID Connect reference lists, with its example values)
// for a push to main of octo-org/octo-repo, issued by iss for aud at now,
// valid for five minutes as GitHub's are.
func GitHubClaims(iss, aud string, now time.Time) map[string]any {
	return map[string]any{
		"jti":                   "example-id",
		"sub":                   "repo:octo-org/octo-repo:ref:refs/heads/main",
		"aud":                   aud,
		"ref":                   "refs/heads/main",
		"sha":                   "example-sha",
		"repository":            "octo-org/octo-repo",
		"repository_owner":      "octo-org",
		"repository_owner_id":   "65",
		"repository_visibility": "private",
		"repository_id":         "74",
		"actor_id":              "12",
		"actor":                 "octocat",
		"run_id":                "example-run-id",
		"run_number":            "10",
		"run_attempt":           "2",
		"runner_environment":    "github-hosted",
		"workflow":              "example-workflow",
		"workflow_ref":          "octo-org/octo-repo/.github/workflows/build.yml@refs/heads/main",
		"job_workflow_ref":      "octo-org/octo-repo/.github/workflows/build.yml@refs/heads/main",
		"head_ref":              "",
		"base_ref":              "",
		"event_name":            "push",
		"ref_type":              "branch",
		"ref_protected":         "true",
		"iss":                   iss,
		"nbf":                   now.Add(-5 * time.Second).Unix(),
		"iat":                   now.Add(-5 * time.Second).Unix(),
		"exp":                   now.Add(5 * time.Minute).Unix(),
	}
}

// KubernetesClaims returns the claim set of a Kubernetes projected
// service-account token (audience list, nested kubernetes.io claims) for
// the service account ci-pusher in namespace builds, valid for an hour.
func KubernetesClaims(iss, aud string, now time.Time) map[string]any {
	return map[string]any{
		"aud": []string{aud},
		"exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(),
		"iss": iss,
		"jti": "8b1c4c6e-5e2f-4c55-9d40-1d6f2a1e7f11",
		"kubernetes.io": map[string]any{
			"namespace": "builds",
			"node":      map[string]any{"name": "node-1", "uid": "5e0bd71c-3e29-4d55-a1f2-0e2b8f6f5c01"},
			"pod":       map[string]any{"name": "pusher-7d9f8", "uid": "900f80ed-bafe-49f0-9ae2-c5f0a3ac2cbe"},
			"serviceaccount": map[string]any{
				"name": "ci-pusher", "uid": "a709ef71-30e2-489a-bd19-ade97031b9db",
			},
		},
		"nbf": now.Unix(),
		"sub": "system:serviceaccount:builds:ci-pusher",
	}
}
