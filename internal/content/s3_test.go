package content_test

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/s3conn"
	"github.com/kluis/kluis/internal/testservers"
)

// openS3Blobs opens the content store at prefix in bucket on w.
func openS3Blobs(t *testing.T, w *testservers.S3, bucket, prefix string) *content.S3 {
	t.Helper()
	u, err := url.Parse(w.URL(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3conn.Open(u, w.AccessKey, w.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	s := content.NewS3(b)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestBlobStoresBehaveAlike (DESIGN §8): the folder and the S3 bucket (a
// real S3 server, versitygw) keep, find, refuse and delete blobs the same
// way, so that projects work the same on one node and on many.
func TestBlobStoresBehaveAlike(t *testing.T) {
	stores := map[string]func(t *testing.T) content.Blobs{
		"folder": func(t *testing.T) content.Blobs {
			d, err := content.OpenDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"s3": func(t *testing.T) content.Blobs {
			return openS3Blobs(t, testservers.StartS3(t), "kluis-content", "node-shared")
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			p, q := kluis.NewID(time.Now()), kluis.NewID(time.Now())
			a, c := address(1), address(2)
			if ok, err := b.Has(ctx, p, a); err != nil || ok {
				t.Fatalf("has before put: %v, %v", ok, err)
			}
			if _, err := b.Get(ctx, p, a); !errors.Is(err, content.ErrNotFound) {
				t.Fatalf("get before put: got %v, want ErrNotFound", err)
			}
			big := bytes.Repeat([]byte("sealed chunk "), content.MaxChunkSize/13)
			for _, put := range []struct {
				project string
				addr    content.Address
				blob    []byte
			}{{p, a, []byte("sealed a")}, {p, a, []byte("sealed a")}, {p, c, big}, {q, a, []byte("sealed in q")}, {q, c, nil}} {
				if err := b.Put(ctx, put.project, put.addr, put.blob); err != nil {
					t.Fatalf("put %d bytes: %v", len(put.blob), err)
				}
			}
			for _, want := range []struct {
				project string
				addr    content.Address
				blob    []byte
			}{{p, a, []byte("sealed a")}, {p, c, big}, {q, a, []byte("sealed in q")}, {q, c, nil}} {
				got, err := b.Get(ctx, want.project, want.addr)
				if err != nil || !bytes.Equal(got, want.blob) {
					t.Fatalf("get: %d bytes, %v; want %d bytes", len(got), err, len(want.blob))
				}
			}
			if err := b.Put(ctx, p, a, make([]byte, content.MaxBlobSize+1)); err == nil {
				t.Error("put a blob over MaxBlobSize")
			}
			for _, bad := range []string{"", "../../etc", "01234567-89ab-cdef-0123-456789ABCDEF", strings.Repeat("a", 36)} {
				if err := b.Put(ctx, bad, a, []byte("x")); !errors.Is(err, content.ErrBadProject) {
					t.Errorf("put into project %q: got %v, want ErrBadProject", bad, err)
				}
			}

			if err := b.Delete(ctx, p, a); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, p, a); err != nil {
				t.Fatalf("deleting a missing blob: %v", err)
			}
			if ok, _ := b.Has(ctx, p, a); ok {
				t.Fatal("a deleted blob is still there")
			}
			if got, err := b.Get(ctx, q, a); err != nil || string(got) != "sealed in q" {
				t.Fatalf("another project's blob after a delete: %q, %v", got, err)
			}
			if err := b.DeleteProject(ctx, p); err != nil {
				t.Fatal(err)
			}
			if ok, _ := b.Has(ctx, p, c); ok {
				t.Fatal("a blob of a deleted project is still there")
			}
			if err := b.DeleteProject(ctx, p); err != nil {
				t.Fatalf("deleting a project without blobs: %v", err)
			}
			if ok, _ := b.Has(ctx, q, a); !ok {
				t.Fatal("deleting a project deleted another's blob")
			}
		})
	}
}

// TestS3BlobsAreSharedByNodesAndMadeOnFirstUse (DESIGN §8, R33): two
// nodes' stores on one bucket and prefix see each other's blobs; the
// bucket is made by the first Put; a project of many blobs is deleted
// whole; a blob the store holds over the size bound is refused, not read
// into memory; a store with wrong keys fails and writes nothing.
func TestS3BlobsAreSharedByNodesAndMadeOnFirstUse(t *testing.T) {
	w := testservers.StartS3(t)
	nodeA := openS3Blobs(t, w, "shared-content", "kluis")
	nodeB := openS3Blobs(t, w, "shared-content", "kluis")
	p := kluis.NewID(time.Now())
	for i := range 30 {
		if err := nodeA.Put(ctx, p, address(byte(i)), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := nodeB.Get(ctx, p, address(7)); err != nil || !bytes.Equal(got, []byte{7}) {
		t.Fatalf("node B reads node A's blob: %v, %v", got, err)
	}
	c := w.Client()
	if _, err := c.StatObject(ctx, "shared-content", "kluis/"+p+"/"+address(7).String(), minio.StatObjectOptions{}); err != nil {
		t.Fatalf("the blob is not where the layout says: %v", err)
	}
	if err := nodeB.DeleteProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	var left int
	for info := range c.ListObjects(ctx, "shared-content", minio.ListObjectsOptions{Prefix: "kluis/", Recursive: true}) {
		if info.Err != nil {
			t.Fatal(info.Err)
		}
		left++
	}
	if left != 0 {
		t.Fatalf("%d objects left after the project was deleted", left)
	}

	q := kluis.NewID(time.Now())
	huge := bytes.NewReader(make([]byte, content.MaxBlobSize+1))
	if _, err := c.PutObject(ctx, "shared-content", "kluis/"+q+"/"+address(1).String(), huge, huge.Size(), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodeA.Get(ctx, q, address(1)); err == nil || errors.Is(err, content.ErrNotFound) {
		t.Errorf("got a blob over MaxBlobSize: %v", err)
	}

	u, _ := url.Parse(w.URL("shared-content", "kluis"))
	bucket, err := s3conn.Open(u, w.AccessKey, "not-the-secret")
	if err != nil {
		t.Fatal(err)
	}
	wrong := content.NewS3(bucket)
	defer wrong.Close()
	r := kluis.NewID(time.Now())
	if err := wrong.Put(ctx, r, address(1), []byte("x")); err == nil {
		t.Fatal("a store with the wrong secret wrote a blob")
	}
	if ok, err := nodeA.Has(ctx, r, address(1)); err != nil || ok {
		t.Errorf("the refused blob: has %v, %v", ok, err)
	}
	if _, err := wrong.Has(ctx, q, address(1)); err == nil {
		t.Error("a store with the wrong secret looked into the bucket")
	}
}
