package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/kluis/kluis/internal/s3conn"
)

// S3 is [Blobs] in a bucket of an S3-compatible object store, for several
// nodes that share no folder (DESIGN §8, scale-out): one object per blob,
//
//	PREFIX/<project>/<address in hex>
//
// A Put is a single PUT of the whole sealed chunk with its length, which
// the store makes visible whole or not at all, with the Content-MD5 the
// store checks; the object store's own durability stands in for Dir's
// fsyncs. The bucket is made by the first Put when it does not exist.
// Every node must use the same bucket and prefix. What the store's operator
// sees: project ids, chunk addresses (keyed hashes that reveal nothing of
// the content) and sizes — the chunks themselves are sealed under the
// project keys, which never leave kluis.
type S3 struct {
	b *s3conn.Bucket
}

var _ Blobs = (*S3)(nil)

// NewS3 keeps blobs in the bucket b.
func NewS3(b *s3conn.Bucket) *S3 { return &S3{b: b} }

// Name is the bucket and prefix (s3://BUCKET/PREFIX), for logs and pages.
func (s *S3) Name() string { return s.b.URL() }

func (s *S3) key(project string, a Address) (string, error) {
	if err := CheckProject(project); err != nil {
		return "", err
	}
	return s.b.Prefix + project + "/" + a.String(), nil
}

// Put implements [Blobs].
func (s *S3) Put(ctx context.Context, project string, a Address, sealed []byte) error {
	key, err := s.key(project, a)
	if err != nil {
		return err
	}
	if len(sealed) > MaxBlobSize {
		return fmt.Errorf("content: a blob of %d bytes, more than %d", len(sealed), MaxBlobSize)
	}
	put := func() error {
		_, err := s.b.Client.PutObject(ctx, s.b.Name, key, bytes.NewReader(sealed), int64(len(sealed)),
			minio.PutObjectOptions{ContentType: "application/octet-stream", SendContentMd5: true, DisableMultipart: true})
		return err
	}
	err = put()
	if s3conn.Code(err) == "NoSuchBucket" {
		if err = s.b.MakeBucket(ctx); err == nil {
			err = put()
		}
	}
	if err != nil {
		return fmt.Errorf("content: %s: writing blob: %w", s.Name(), err)
	}
	return nil
}

// Get implements [Blobs].
func (s *S3) Get(ctx context.Context, project string, a Address) ([]byte, error) {
	key, err := s.key(project, a)
	if err != nil {
		return nil, err
	}
	obj, err := s.b.Client.GetObject(ctx, s.b.Name, key, minio.GetObjectOptions{})
	var info minio.ObjectInfo
	if err == nil {
		defer obj.Close()
		info, err = obj.Stat()
	}
	switch c := s3conn.Code(err); {
	case c == "NoSuchKey" || c == "NoSuchBucket":
		return nil, fmt.Errorf("%w: %s in project %s", ErrNotFound, a, project)
	case err != nil:
		return nil, fmt.Errorf("content: %s: reading blob: %w", s.Name(), err)
	}
	if info.Size > MaxBlobSize {
		return nil, fmt.Errorf("content: blob %s in project %s is not a sealed chunk (%d bytes)", a, project, info.Size)
	}
	// Read into a buffer of the stated size (io.ReadAll would grow one by
	// doubling: twice the garbage per chunk), with one byte more to notice
	// an object longer than it said.
	b := make([]byte, info.Size+1)
	n, err := io.ReadFull(obj, b)
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		if err == nil {
			err = errors.New("the object is longer than it said")
		}
		return nil, fmt.Errorf("content: %s: reading blob %s: %w", s.Name(), a, err)
	}
	if int64(n) != info.Size {
		return nil, fmt.Errorf("content: %s: blob %s: read %d bytes of %d", s.Name(), a, n, info.Size)
	}
	return b[:n], nil
}

// Has implements [Blobs].
func (s *S3) Has(ctx context.Context, project string, a Address) (bool, error) {
	key, err := s.key(project, a)
	if err != nil {
		return false, err
	}
	_, err = s.b.Client.StatObject(ctx, s.b.Name, key, minio.StatObjectOptions{})
	switch c := s3conn.Code(err); {
	case err == nil:
		return true, nil
	case c == "NoSuchKey" || c == "NoSuchBucket":
		return false, nil
	default:
		return false, fmt.Errorf("content: %s: looking for blob: %w", s.Name(), err)
	}
}

// Delete implements [Blobs].
func (s *S3) Delete(ctx context.Context, project string, a Address) error {
	key, err := s.key(project, a)
	if err != nil {
		return err
	}
	err = s.b.Client.RemoveObject(ctx, s.b.Name, key, minio.RemoveObjectOptions{})
	if c := s3conn.Code(err); c == "NoSuchKey" || c == "NoSuchBucket" {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("content: %s: deleting blob: %w", s.Name(), err)
	}
	return nil
}

// DeleteProject implements [Blobs]: every object under the project's
// prefix, listed and removed in batches. An interrupted deletion leaves
// some blobs, which a second call removes; the project's rows (and its
// key) are gone before, so what is left is unreadable.
func (s *S3) DeleteProject(ctx context.Context, project string) error {
	if err := CheckProject(project); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objects := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objects)
		for info := range s.b.Client.ListObjects(ctx, s.b.Name, minio.ListObjectsOptions{Prefix: s.b.Prefix + project + "/", Recursive: true}) {
			if info.Err != nil {
				if s3conn.Code(info.Err) != "NoSuchBucket" {
					listErr = info.Err
				}
				return
			}
			select {
			case objects <- info:
			case <-ctx.Done():
				return
			}
		}
	}()
	var removeErr error
	for r := range s.b.Client.RemoveObjects(ctx, s.b.Name, objects, minio.RemoveObjectsOptions{}) {
		if r.Err != nil && removeErr == nil && s3conn.Code(r.Err) != "NoSuchKey" {
			removeErr = r.Err
		}
	}
	if err := errors.Join(listErr, removeErr, ctx.Err()); err != nil {
		return fmt.Errorf("content: %s: deleting project blobs: %w", s.Name(), err)
	}
	return nil
}

// Close lets the client's idle connections go.
func (s *S3) Close() error {
	s.b.Close()
	return nil
}
