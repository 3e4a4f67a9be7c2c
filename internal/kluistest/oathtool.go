package kluistest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// OATHToolCode asks Debian's oath-toolkit (oathtool), a TOTP client nobody
// here wrote, for the code of the base32 secret at the time at. Without
// oathtool the test skips, except in CI, where it fails.
func OATHToolCode(tb testing.TB, secret string, at time.Time) string {
	tb.Helper()
	path, err := exec.LookPath("oathtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("oathtool is not installed (Debian package oathtool)")
		}
		tb.Skip("oathtool is not installed (Debian package oathtool); CI installs it")
	}
	out, err := exec.Command(path, "--totp", "-b", "--now", at.UTC().Format("2006-01-02 15:04:05 UTC"), secret).Output()
	if err != nil {
		tb.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}
