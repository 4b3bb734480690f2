package tlsconf

import (
	"crypto/tls"
	"strings"
	"testing"
)

// TestSuitesNoWeak: what is used beyond Go's defaults is RSA key
// exchange with AES-GCM or AES-CBC-SHA: never 3DES, RC4 or CBC-SHA256.
func TestSuitesNoWeak(t *testing.T) {
	rsaKex := 0
	for _, id := range Suites {
		name := tls.CipherSuiteName(id)
		if strings.Contains(name, "3DES") || strings.Contains(name, "RC4") || strings.HasSuffix(name, "CBC_SHA256") {
			t.Errorf("uses %s", name)
		}
		if strings.HasPrefix(name, "TLS_RSA_") {
			rsaKex++
		}
	}
	if rsaKex != 4 {
		t.Errorf("%d RSA key exchange suites, want 4: %v", rsaKex, Suites)
	}
}
