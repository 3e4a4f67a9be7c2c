// Package s3conn opens a bucket of an S3-compatible object store from an
// s3:// URL (s3://BUCKET/PREFIX?endpoint=URL&region=REGION) and keys, for
// the two places kluis keeps objects there: backup targets and the project
// content store. It checks the URL and builds the client; it does not
// connect.
package s3conn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Timeout bounds dialling, TLS handshakes and the wait for an answer's
// headers (four times this), so a store that is down or hangs fails an
// operation instead of stalling it.
const Timeout = 15 * time.Second

// Bucket is one bucket and key prefix with a client for it.
type Bucket struct {
	Client    *minio.Client
	Transport *http.Transport
	Name      string // the bucket
	Prefix    string // "" or ending in "/"
	Region    string
}

// Open checks u and the keys and returns the bucket it names. The errors
// say what is wrong for an operator, never the keys.
func Open(u *url.URL, accessKey, secretKey string) (*Bucket, error) {
	bucket := u.Host
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, fmt.Errorf("an s3:// URL names its bucket: s3://BUCKET/PREFIX?endpoint=URL (%q is not a bucket name)", truncate(bucket))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if !validPrefix(prefix) {
			return nil, fmt.Errorf("the prefix of an s3:// URL is a path of lower-case letters, digits and \".-_\" (%q is not)", truncate(prefix))
		}
		prefix += "/"
	}
	q := u.Query()
	endpoint, err := url.Parse(q.Get("endpoint"))
	if err != nil || q.Get("endpoint") == "" || (endpoint.Scheme != "http" && endpoint.Scheme != "https") ||
		endpoint.Host == "" || endpoint.User != nil || strings.Trim(endpoint.Path, "/") != "" || endpoint.RawQuery != "" {
		return nil, errors.New("an s3:// URL names its endpoint: ?endpoint=https://HOST[:PORT] (http:// only on a trusted network)")
	}
	if accessKey == "" || secretKey == "" {
		return nil, errors.New("an s3:// URL needs its keys")
	}
	region := q.Get("region")
	dialer := &net.Dialer{Timeout: Timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   Timeout,
		ResponseHeaderTimeout: 4 * Timeout, // a part's checksum and write may take a while
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	client, err := minio.New(endpoint.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure:    endpoint.Scheme == "https",
		Region:    region,
		Transport: transport,
		// A few retries ride out a hiccup; the default ten make a store
		// that is down take long to say so.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("an s3:// URL's endpoint: %w", err)
	}
	return &Bucket{Client: client, Transport: transport, Name: bucket, Prefix: prefix, Region: region}, nil
}

// URL is the bucket and prefix as s3://BUCKET/PREFIX, without the endpoint.
func (b *Bucket) URL() string { return "s3://" + b.Name + "/" + strings.TrimSuffix(b.Prefix, "/") }

// MakeBucket creates the bucket in its region; one that exists already
// (made meanwhile by another writer) is no error.
func (b *Bucket) MakeBucket(ctx context.Context) error {
	err := b.Client.MakeBucket(ctx, b.Name, minio.MakeBucketOptions{Region: b.Region})
	if c := Code(err); c == "BucketAlreadyOwnedByYou" || c == "BucketAlreadyExists" {
		return nil
	}
	return err
}

// Close lets the client's idle connections go.
func (b *Bucket) Close() { b.Transport.CloseIdleConnections() }

// Code is the S3 error code of err ("NoSuchKey", "AccessDenied", …), ""
// when err is not an answer of the store.
func Code(err error) string {
	var e minio.ErrorResponse
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// validPrefix: slash-separated parts of [a-z0-9._-], none empty, "." or "..".
func validPrefix(p string) bool {
	if len(p) > 512 {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
