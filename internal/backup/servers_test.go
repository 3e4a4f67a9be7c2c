package backup

import (
	"testing"

	"github.com/kluis/kluis/internal/testservers"
)

// startS3 starts a real S3 server for the test (package testservers).
func startS3(t *testing.T) *testservers.S3 { return testservers.StartS3(t) }

// startSSHD starts a real sshd for the test (package testservers).
func startSSHD(t *testing.T) *testservers.SSHD { return testservers.StartSSHD(t) }

// s3Target is the target URL of prefix in bucket on w, declared in NL.
func s3Target(w *testservers.S3, bucket, prefix string) string {
	return w.URL(bucket, prefix) + "&location=NL"
}

// s3Config holds w's keys.
func s3Config(w *testservers.S3) TargetConfig {
	return TargetConfig{S3AccessKey: w.AccessKey, S3SecretKey: w.SecretKey}
}

// sftpTarget is the target URL of the folder dir on s, declared in NL.
func sftpTarget(s *testservers.SSHD, dir string) string { return s.URL(dir) + "?location=NL" }

// sftpConfig pins s's host key and logs in with its key.
func sftpConfig(s *testservers.SSHD) TargetConfig {
	return TargetConfig{SFTPHostKey: s.HostKey, SFTPKeyFile: s.KeyFile}
}
