package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/kluis/kluis/internal/s3conn"
)

// s3PartSize is the part size of S3 uploads: a Put holds one part in memory
// at a time, and an object can grow to 10,000 parts (156 GiB).
const s3PartSize = 16 << 20

// S3 is a [Target] in a bucket of an S3-compatible object store
// (s3://BUCKET/PREFIX?endpoint=URL&region=REGION): objects are the keys
// PREFIX/NAME. An upload is a multipart upload that the store makes visible
// only when it completes, so an object is whole or absent; a failed upload
// is aborted (a bucket lifecycle rule that aborts incomplete multipart
// uploads after a day cleans up after a process that died mid-upload).
//
// The bucket is created (in REGION) by the first Put when it does not
// exist, as restic does; until then the target holds no objects. Keys that
// need only object rights work when the bucket exists already.
type S3 struct {
	b        *s3conn.Bucket
	client   *minio.Client
	bucket   string
	prefix   string // "" or ending in "/"
	location string
}

// openS3 opens an s3:// target: it checks the URL and the keys, and does
// not connect.
func openS3(u *url.URL, location string, cfg TargetConfig) (Target, error) {
	if cfg.S3AccessKey == "" || cfg.S3SecretKey == "" {
		if _, err := s3conn.Open(u, "-", "-"); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		return nil, errors.New("backup: an s3:// target needs its keys (KLUIS_BACKUP_S3_ACCESS_KEY and KLUIS_BACKUP_S3_SECRET_KEY)")
	}
	b, err := s3conn.Open(u, cfg.S3AccessKey, cfg.S3SecretKey)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return &S3{b: b, client: b.Client, bucket: b.Name, prefix: b.Prefix, location: location}, nil
}

// Name implements [Target].
func (t *S3) Name() string { return t.b.URL() }

// Location implements [Target].
func (t *S3) Location() string { return t.location }

func (t *S3) key(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return t.prefix + name, nil
}

// Put implements [Target]. It streams r in parts of s3PartSize.
func (t *S3) Put(ctx context.Context, name string, r io.Reader) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	cr := &countingReader{r: ctxReader{ctx, r}}
	opts := minio.PutObjectOptions{PartSize: s3PartSize, ContentType: "application/octet-stream"}
	_, err = t.client.PutObject(ctx, t.bucket, key, cr, -1, opts)
	if s3conn.Code(err) == "NoSuchBucket" && cr.n == 0 {
		if err = t.b.MakeBucket(ctx); err != nil {
			return fmt.Errorf("backup: %s: creating the bucket: %w", t.Name(), err)
		}
		_, err = t.client.PutObject(ctx, t.bucket, key, cr, -1, opts)
	}
	if err != nil {
		return fmt.Errorf("backup: %s: put %s: %w", t.Name(), name, err)
	}
	return nil
}

// Open implements [Target]. It asks for the object before it returns, so a
// missing object is an error of Open, not of the first Read.
func (t *S3) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := t.key(name)
	if err != nil {
		return nil, err
	}
	obj, err := t.client.GetObject(ctx, t.bucket, key, minio.GetObjectOptions{})
	if err == nil {
		_, err = obj.Stat()
		if err != nil {
			obj.Close()
		}
	}
	switch c := s3conn.Code(err); {
	case err == nil:
		return obj, nil
	case c == "NoSuchKey" || c == "NoSuchBucket":
		return nil, fmt.Errorf("%w: %s on %s", ErrNotExist, name, t.Name())
	default:
		return nil, fmt.Errorf("backup: %s: open %s: %w", t.Name(), name, err)
	}
}

// List implements [Target]. Keys under the prefix that are not object names
// (written by something else) are left out.
func (t *S3) List(ctx context.Context, prefix string) ([]Object, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []Object
	for info := range t.client.ListObjects(ctx, t.bucket, minio.ListObjectsOptions{Prefix: t.prefix + prefix, Recursive: true}) {
		if info.Err != nil {
			if s3conn.Code(info.Err) == "NoSuchBucket" {
				return nil, nil
			}
			return nil, fmt.Errorf("backup: %s: list: %w", t.Name(), info.Err)
		}
		name := strings.TrimPrefix(info.Key, t.prefix)
		if CheckName(name) != nil || !strings.HasPrefix(name, prefix) {
			continue
		}
		out = append(out, Object{Name: name, Size: info.Size})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Delete implements [Target].
func (t *S3) Delete(ctx context.Context, name string) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	err = t.client.RemoveObject(ctx, t.bucket, key, minio.RemoveObjectOptions{})
	if c := s3conn.Code(err); c == "NoSuchKey" || c == "NoSuchBucket" {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("backup: %s: delete %s: %w", t.Name(), name, err)
	}
	return nil
}

// Close implements [Target].
func (t *S3) Close() error {
	t.b.Close()
	return nil
}
