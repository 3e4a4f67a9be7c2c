package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// When serve's context ends (SIGINT or SIGTERM in the binary) it finishes in
// flight work, checkpoints every chain and returns nil (docs/SECURITY.md, Audit: a
// checkpoint at shutdown). Nil also means that the graceful shutdown did
// not have to give up at its own deadline; how many seconds it took is the
// machine's business.
func TestServeShutsDownGracefullyWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testEnv()
	s := startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir)
	// A failed login is an event of acme's chain that only the server's
	// checkpoint at shutdown covers.
	if got := api(t, "POST", "http://"+s.addr+"/api/v1/orgs/acme/login", "", map[string]string{"email": "m@example.com", "password": "wrong password"}, nil); got != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password: got %d, want 401", got)
	}

	if err := s.shutdown(t); err != nil {
		t.Errorf("serve returned %v after its context ended, want nil", err)
	}
	if _, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
		t.Errorf("the server still answers after serve returned")
	}

	r := mustCLI(t, env, "", "audit", "verify", "--data", dir)
	counts := okLines(r.stdout)
	if len(counts) != 2 {
		t.Fatalf("audit verify listed %v, want the platform chain and acme's", counts)
	}
	heads := witnessHeads(t, dir)
	for chain, n := range counts {
		if got := strconv.FormatInt(heads[chain], 10); got != n {
			t.Errorf("chain %s: the witness's newest checkpoint is at %s, want %s (its newest event)", chain, got, n)
		}
	}
}

// metricsAddr returns the address from the "metrics listening" log line, or
// "" when there is none.
func metricsAddr(t testing.TB, log string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "metrics listening" {
			return line.Addr
		}
	}
	return ""
}

// The Prometheus metrics listen on an address of their own, only when asked
// (R46: the admin surface stays off the public listener).
func TestServeMetricsListenOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		env         map[string]string
		args        []string
		wantMetrics bool
	}{
		{"--metrics-addr", testEnv(), []string{"--metrics-addr", "127.0.0.1:0"}, true},
		{"KLUIS_METRICS_ADDR", testEnv("KLUIS_METRICS_ADDR", "127.0.0.1:0"), nil, true},
		{"neither", testEnv(), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServe(t, tt.env, append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, tt.args...)...)
			base := "http://" + s.addr
			if resp, err := http.Get(base + "/healthz"); err != nil {
				t.Fatal(err)
			} else {
				resp.Body.Close()
			}
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /metrics on the public listener: got %d, want 404", resp.StatusCode)
			}

			addr := metricsAddr(t, s.stderr.String())
			if !tt.wantMetrics {
				if addr != "" {
					t.Errorf("metrics listen on %s, want no metrics listener", addr)
				}
				return
			}
			if addr == "" || addr == s.addr {
				t.Fatalf("metrics address %q, want a listener of its own; log:\n%s", addr, s.stderr)
			}
			resp, err = http.Get("http://" + addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "kluis_http_requests_total") {
				t.Errorf("GET /metrics: got %d, want 200 with kluis_http_requests_total:\n%.2000s", resp.StatusCode, body)
			}
			if err := s.shutdown(t); err != nil {
				t.Errorf("serve: %v", err)
			}
			if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
				t.Errorf("the metrics listener still answers after serve returned")
			}
		})
	}
}

// The body cap is configurable (1 MiB by default): a larger body gets the
// contract's 413 too_large.
func TestServeBodyLimitIsConfigurable(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, testEnv("KLUIS_MAX_BODY_KIB", "1"), "--addr", "127.0.0.1:0", "--data", dir)
	body := strings.NewReader(`{"email":"a@b.org","password":"` + strings.Repeat("x", 2000) + `"}`)
	resp, err := http.Post("http://"+s.addr+"/api/v1/operator/login", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d, want 413 for a 2 KB body with a 1 KiB limit", resp.StatusCode)
	}
}
