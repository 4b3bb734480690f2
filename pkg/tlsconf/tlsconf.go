// Package tlsconf holds the TLS settings that qmail-remote (the SMTP
// client) and qmail-smtpd (the server) share, so that what one sends the
// other takes.
package tlsconf

import (
	"crypto/tls"
	"slices"
)

// MinVersion is the oldest TLS either side speaks: 1.2. TLS 1.0 and 1.1
// are refused, under every policy.
const MinVersion = tls.VersionTLS12

// Suites are the TLS 1.2 cipher suites offered and accepted (TLS 1.3's
// are not configurable, and all are used): Go's secure ones (ECDHE with
// AES-GCM, ChaCha20-Poly1305 or AES-CBC), and the RSA key exchange suites
// with AES-GCM or AES-CBC, which Go no longer uses by default (Go 1.22).
// An old peer (a provider's submission server, a company's Exchange, a
// scanner or printer that sends mail) may speak nothing else; refused,
// its mail went in clear or not at all. Encrypted without forward secrecy
// is better than either; Postfix and others with OpenSSL take these too.
// A peer that offers ECDHE gets ECDHE: crypto/tls ranks the RSA key
// exchange suites last. Never 3DES, RC4, or the CBC-SHA256 suites
// (Lucky13).
var Suites = func() []uint16 {
	var ids []uint16
	for _, cs := range tls.CipherSuites() {
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			ids = append(ids, cs.ID)
		}
	}
	return append(ids,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA)
}()
