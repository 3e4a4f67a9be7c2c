package mail

import "crypto/x509"

// SetRootCAs makes s trust the certificates of a test server.
func SetRootCAs(s *SMTP, pool *x509.CertPool) {
	s.rootCAs = pool
}

// RedactAddresses is redactAddresses, for tests.
var RedactAddresses = redactAddresses
