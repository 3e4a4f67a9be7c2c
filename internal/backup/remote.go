package backup

import (
	"errors"
	"net/url"
)

// openSFTP opens an sftp:// target. Placeholder until the SFTP target lands.
func openSFTP(u *url.URL, location string, cfg TargetConfig) (Target, error) {
	return nil, errors.New("backup: sftp:// targets are not built yet")
}

// openS3 opens an s3:// target. Placeholder until the S3 target lands.
func openS3(u *url.URL, location string, cfg TargetConfig) (Target, error) {
	return nil, errors.New("backup: s3:// targets are not built yet")
}
