package main

import (
	"net/url"
	"strings"

	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/s3conn"
	"github.com/kluis/kluis/internal/sqlstore/areas"
)

// contentConfig says where projects' sealed chunks live when that is not
// the default (DATA/content with SQLite, the database with PostgreSQL): an
// S3 bucket every node shares (DESIGN §8, docs/OPERATIONS.md, "Project
// content in a bucket"). The keys come from the environment or the config
// file only.
type contentConfig struct {
	Store     string // KLUIS_CONTENT_STORE: s3://BUCKET/PREFIX?endpoint=URL&region=…
	AccessKey string // KLUIS_CONTENT_S3_ACCESS_KEY
	SecretKey string // KLUIS_CONTENT_S3_SECRET_KEY
}

// newContentConfig reads and checks the content store's settings; a wrong
// one stops kluis at start.
func newContentConfig(env func(string) string) (contentConfig, error) {
	c := contentConfig{Store: env("KLUIS_CONTENT_STORE"), AccessKey: env("KLUIS_CONTENT_S3_ACCESS_KEY"), SecretKey: env("KLUIS_CONTENT_S3_SECRET_KEY")}
	if c.Store == "" {
		return c, nil
	}
	_, err := c.bucket()
	return c, err
}

// bucket opens the bucket the settings name; nil when there is none.
func (c contentConfig) bucket() (*s3conn.Bucket, error) {
	if c.Store == "" {
		return nil, nil
	}
	u, err := url.Parse(c.Store)
	if err != nil || u.Scheme != "s3" {
		return nil, &cliError{code: 2, msg: "KLUIS_CONTENT_STORE must be an s3:// URL: s3://BUCKET/PREFIX?endpoint=https://HOST[:PORT]&region=REGION"}
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return nil, &cliError{code: 2, msg: "KLUIS_CONTENT_STORE needs its keys: KLUIS_CONTENT_S3_ACCESS_KEY and KLUIS_CONTENT_S3_SECRET_KEY"}
	}
	b, err := s3conn.Open(u, c.AccessKey, c.SecretKey)
	if err != nil {
		return nil, &cliError{code: 2, msg: "KLUIS_CONTENT_STORE: " + strings.TrimSpace(err.Error())}
	}
	return b, nil
}

// contentStore is where this process keeps projects' chunks: the bucket
// the configuration names, or the engine's default.
func (a *app) contentStore() (content.Blobs, error) {
	b, err := a.cfg.Content.bucket()
	switch {
	case err != nil:
		return nil, err
	case b == nil:
		return areas.ContentStore(a.db, a.cfg.DataDir)
	}
	return content.NewS3(b), nil
}
