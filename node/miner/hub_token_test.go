package miner

import "testing"

// The Hub token goes to an endpoint a config file names only when it is
// the default Hub or $HF_ENDPOINT names it too: a shared config cannot
// send the operator's token elsewhere (issue 17).
func TestTokenEndpoint(t *testing.T) {
	t.Setenv("HF_ENDPOINT", "")
	for _, tc := range []struct {
		env, endpoint string
		want          bool
	}{
		{"", "https://huggingface.co", true},
		{"", "https://huggingface.co/", true},
		{"", "https://evil.example", false},
		{"https://mirror.example/", "https://mirror.example", true},
		{"https://mirror.example", "https://evil.example", false},
	} {
		t.Setenv("HF_ENDPOINT", tc.env)
		if got := tokenEndpoint(tc.endpoint); got != tc.want {
			t.Errorf("HF_ENDPOINT=%q, hub.endpoint %q: token %v, want %v", tc.env, tc.endpoint, got, tc.want)
		}
	}
}
