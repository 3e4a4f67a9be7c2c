package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// s3PartSize is the part size of S3 uploads: a Put holds one part in memory
// at a time, and an object can grow to 10,000 parts (156 GiB).
const s3PartSize = 16 << 20

// s3Timeout bounds dialling, TLS handshakes and the wait for an answer's
// headers, so a target that is down or hangs fails its operation instead of
// stalling a backup.
const s3Timeout = 15 * time.Second

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
	client    *minio.Client
	transport *http.Transport
	bucket    string
	prefix    string // "" or ending in "/"
	region    string
	location  string
}

// openS3 opens an s3:// target: it checks the URL and the keys, and does
// not connect.
func openS3(u *url.URL, location string, cfg TargetConfig) (Target, error) {
	bucket := u.Host
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, fmt.Errorf("backup: an s3:// target names its bucket: s3://BUCKET/PREFIX?endpoint=URL (%q is not a bucket name)", truncate(bucket))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := CheckName(prefix); err != nil {
			return nil, fmt.Errorf("backup: the prefix of an s3:// target is a path of lower-case letters, digits and \".-_\" (%q is not)", truncate(prefix))
		}
		prefix += "/"
	}
	q := u.Query()
	endpoint, err := url.Parse(q.Get("endpoint"))
	if err != nil || q.Get("endpoint") == "" || (endpoint.Scheme != "http" && endpoint.Scheme != "https") ||
		endpoint.Host == "" || endpoint.User != nil || strings.Trim(endpoint.Path, "/") != "" || endpoint.RawQuery != "" {
		return nil, errors.New("backup: an s3:// target names its endpoint: ?endpoint=https://HOST[:PORT] (http:// only on a trusted network)")
	}
	if cfg.S3AccessKey == "" || cfg.S3SecretKey == "" {
		return nil, errors.New("backup: an s3:// target needs its keys (KLUIS_BACKUP_S3_ACCESS_KEY and KLUIS_BACKUP_S3_SECRET_KEY)")
	}
	region := q.Get("region")
	dialer := &net.Dialer{Timeout: s3Timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   s3Timeout,
		ResponseHeaderTimeout: 4 * s3Timeout, // a part's checksum and write may take a while
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
	client, err := minio.New(endpoint.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.S3AccessKey, cfg.S3SecretKey, ""),
		Secure:    endpoint.Scheme == "https",
		Region:    region,
		Transport: transport,
		// A few retries ride out a hiccup; the default ten make a target
		// that is down take long to say so.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("backup: an s3:// target's endpoint: %w", err)
	}
	return &S3{client: client, transport: transport, bucket: bucket, prefix: prefix, region: region, location: location}, nil
}

// Name implements [Target].
func (t *S3) Name() string {
	return "s3://" + t.bucket + "/" + strings.TrimSuffix(t.prefix, "/")
}

// Location implements [Target].
func (t *S3) Location() string { return t.location }

func (t *S3) key(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return t.prefix + name, nil
}

// s3Code is the S3 error code of err ("NoSuchKey", "AccessDenied", …), ""
// when err is not an answer of the store.
func s3Code(err error) string {
	var e minio.ErrorResponse
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
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
	if s3Code(err) == "NoSuchBucket" && cr.n == 0 {
		err = t.client.MakeBucket(ctx, t.bucket, minio.MakeBucketOptions{Region: t.region})
		if c := s3Code(err); c == "BucketAlreadyOwnedByYou" || c == "BucketAlreadyExists" {
			err = nil // another Put made it meanwhile
		}
		if err != nil {
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
	switch c := s3Code(err); {
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
			if s3Code(info.Err) == "NoSuchBucket" {
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
	if c := s3Code(err); c == "NoSuchKey" || c == "NoSuchBucket" {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("backup: %s: delete %s: %w", t.Name(), name, err)
	}
	return nil
}

// Close implements [Target].
func (t *S3) Close() error {
	t.transport.CloseIdleConnections()
	return nil
}
