package backup

import (
	"context"
	"errors"
	"github.com/kluis/kluis/internal/s3conn"
	"github.com/kluis/kluis/internal/testservers"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestS3TargetRefusesIncompleteSettings: an s3:// target without an
// endpoint or its keys does not open, and never shows a key.
func TestS3TargetRefusesIncompleteSettings(t *testing.T) {
	keys := TargetConfig{S3AccessKey: "AKIDEXAMPLE", S3SecretKey: "wJalrXUtnFEMIsecretEXAMPLEKEY"}
	for _, c := range []struct {
		name, url string
		cfg       TargetConfig
		want      string
	}{
		{"no endpoint", "s3://kluis-backups/prod", keys, "names its endpoint"},
		{"an endpoint that is no URL", "s3://kluis-backups/prod?endpoint=s3.example.org", keys, "names its endpoint"},
		{"an ftp endpoint", "s3://kluis-backups/prod?endpoint=ftp://s3.example.org", keys, "names its endpoint"},
		{"an endpoint with a path", "s3://kluis-backups/prod?endpoint=https://s3.example.org/bucket", keys, "names its endpoint"},
		{"an endpoint with a user", "s3://kluis-backups/prod?endpoint=https://AKIDEXAMPLE@s3.example.org", keys, "names its endpoint"},
		{"no bucket", "s3:///prod?endpoint=https://s3.example.org", keys, "names its bucket"},
		{"a bucket name S3 refuses", "s3://Kluis_Backups/prod?endpoint=https://s3.example.org", keys, "names its bucket"},
		{"a prefix that is no path", "s3://kluis-backups/a//b?endpoint=https://s3.example.org", keys, "prefix"},
		{"no secret key", "s3://kluis-backups/prod?endpoint=https://s3.example.org", TargetConfig{S3AccessKey: "AKIDEXAMPLE"}, "needs its keys"},
		{"no access key", "s3://kluis-backups/prod?endpoint=https://s3.example.org", TargetConfig{S3SecretKey: "wJalrXUtnFEMIsecretEXAMPLEKEY"}, "needs its keys"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg, err := OpenTarget(c.url, c.cfg)
			if err == nil {
				tg.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, want it to mention %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secretEXAMPLE") {
				t.Errorf("the error %q shows the secret key", err)
			}
		})
	}
}

// TestS3TargetName: the name is the bucket and prefix, without the query.
func TestS3TargetName(t *testing.T) {
	keys := TargetConfig{S3AccessKey: "AKIDEXAMPLE", S3SecretKey: "wJalrXUtnFEMIsecretEXAMPLEKEY"}
	for _, c := range []struct{ url, name, key string }{
		{"s3://kluis-backups/prod/?endpoint=https://s3.example.org&region=eu-west-1&location=EU", "s3://kluis-backups/prod", "prod/b1/x"},
		{"s3://kluis-backups?endpoint=http://127.0.0.1:8333", "s3://kluis-backups/", "b1/x"},
	} {
		tg := mustOpenTarget(t, c.url, keys)
		if tg.Name() != c.name {
			t.Errorf("%s: name %q, want %q", c.url, tg.Name(), c.name)
		}
		if k, _ := tg.(*S3).key("b1/x"); k != c.key {
			t.Errorf("%s: key %q, want %q", c.url, k, c.key)
		}
	}
}

// TestS3TargetOnARealStore runs the S3 target's own cases on one
// versitygw server (R30).
func TestS3TargetOnARealStore(t *testing.T) {
	w := startS3(t)
	for _, c := range []struct {
		name string
		run  func(t *testing.T, w *testservers.S3)
	}{
		{"a wrong secret is refused", s3RefusesAWrongSecret},
		{"the first put makes the bucket", s3MakesItsBucket},
		{"a failed put leaves no upload", s3FailedPutLeavesNoUpload},
		{"the store restarted works", s3WorksAfterARestart}, // last: it stops the server
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, w) })
	}
}

// s3RefusesAWrongSecret: the store checks the keys; with a wrong
// secret nothing is stored or read, and the error does not show the secret.
func s3RefusesAWrongSecret(t *testing.T, w *testservers.S3) {
	good := mustOpenTarget(t, s3Target(w, "secrets", "prod"), s3Config(w))
	put(t, good, "b1/x", "sealed")

	cfg := s3Config(w)
	cfg.S3SecretKey = strings.ToUpper(w.SecretKey)
	bad := mustOpenTarget(t, s3Target(w, "secrets", "prod"), cfg)
	checks := map[string]error{}
	checks["put"] = bad.Put(context.Background(), "b1/y", strings.NewReader("sealed"))
	_, checks["open"] = bad.Open(context.Background(), "b1/x")
	_, checks["list"] = bad.List(context.Background(), "")
	checks["delete"] = bad.Delete(context.Background(), "b1/x")
	for op, err := range checks {
		if err == nil {
			t.Errorf("%s with a wrong secret succeeded", op)
			continue
		}
		if errors.Is(err, ErrNotExist) {
			t.Errorf("%s: got %v, want refused, not missing", op, err)
		}
		if c := s3conn.Code(err); c != "SignatureDoesNotMatch" && c != "AccessDenied" && c != "InvalidAccessKeyId" {
			t.Errorf("%s: got %v (code %q), want the keys refused", op, err, c)
		}
		if strings.Contains(err.Error(), cfg.S3SecretKey) || strings.Contains(err.Error(), w.SecretKey) {
			t.Errorf("%s: the error %q shows a secret", op, err)
		}
	}
	assertList(t, good, "", "b1/x:6")
}

// TestS3TargetThatIsDownFailsFast: a store that is not there fails the
// operation loudly and soon, naming the target (R30).
func TestS3TargetThatIsDownFailsFast(t *testing.T) {
	port := testservers.FreePorts(t, 1)[0]
	tg := mustOpenTarget(t, "s3://kluis-backups/prod?endpoint=http://127.0.0.1:"+strconv.Itoa(port),
		TargetConfig{S3AccessKey: "AKIDEXAMPLE", S3SecretKey: "wJalrXUtnFEMIsecretEXAMPLEKEY"})
	start := time.Now()
	for op, err := range map[string]error{
		"put":    tg.Put(context.Background(), "b1/x", strings.NewReader("sealed")),
		"delete": tg.Delete(context.Background(), "b1/x"),
	} {
		if err == nil || !strings.Contains(err.Error(), tg.Name()) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s got %v, want connection refused naming %s", op, err, tg.Name())
		}
	}
	if _, err := tg.Open(context.Background(), "b1/x"); err == nil || errors.Is(err, ErrNotExist) {
		t.Errorf("open got %v, want an error that is not ErrNotExist", err)
	}
	if _, err := tg.List(context.Background(), ""); err == nil {
		t.Error("list succeeded")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("four operations took %v", d)
	}
}

// s3MakesItsBucket: until the first Put the bucket need not
// exist: the target holds nothing; the first Put makes it.
func s3MakesItsBucket(t *testing.T, w *testservers.S3) {
	tg := mustOpenTarget(t, s3Target(w, "fresh-bucket", "prod"), s3Config(w))
	assertList(t, tg, "")
	assertNotExist(t, tg, "b1/x")
	if err := tg.Delete(context.Background(), "b1/x"); err != nil {
		t.Fatalf("delete in a missing bucket: %v", err)
	}
	put(t, tg, "b1/x", "sealed")
	if ok, err := w.Client().BucketExists(context.Background(), "fresh-bucket"); !ok || err != nil {
		t.Fatalf("bucket exists %v (%v), want made by the first put", ok, err)
	}
	assertList(t, tg, "", "b1/x:6")
}

// s3FailedPutLeavesNoUpload: a failed Put aborts its multipart
// upload, so the store keeps no parts of it; keys outside the prefix, or
// that are no object names, are not the target's objects.
func s3FailedPutLeavesNoUpload(t *testing.T, w *testservers.S3) {
	tg := mustOpenTarget(t, s3Target(w, "uploads", "prod"), s3Config(w))
	put(t, tg, "b1/x", "sealed")
	// More than one part, then the reader breaks.
	if err := tg.Put(context.Background(), "b1/big", failingReader(s3PartSize+(1<<20))); !errors.Is(err, errReader) {
		t.Fatalf("put got %v, want the reader's error", err)
	}
	c := w.Client()
	for u := range c.ListIncompleteUploads(context.Background(), "uploads", "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("an incomplete upload of %s is left", u.Key)
	}
	for _, key := range []string{"other/b1/y", "prod/Not An Object", "prodx/y"} {
		if _, err := c.PutObject(context.Background(), "uploads", key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	assertList(t, tg, "", "b1/x:6")
	assertNotExist(t, tg, "b1/big")
}

// s3WorksAfterARestart: the operation after the store restarted works (on
// new connections); one while it is down fails.
func s3WorksAfterARestart(t *testing.T, w *testservers.S3) {
	tg := mustOpenTarget(t, s3Target(w, "restart", "prod"), s3Config(w))
	put(t, tg, "b1/x", "first")
	w.Stop()
	if err := tg.Put(context.Background(), "b1/y", strings.NewReader("lost")); err == nil {
		t.Fatal("put succeeded while the store was down")
	}
	w.Start()
	if got := read(t, tg, "b1/x"); got != "first" {
		t.Errorf("read %q after the restart", got)
	}
	put(t, tg, "b1/y", "second")
	assertList(t, tg, "", "b1/x:5", "b1/y:6")
}
