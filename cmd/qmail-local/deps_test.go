package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetwork keeps qmail-local free of network code: it runs as the
// recipient on behalf of anyone who can send mail, and needs none.
func TestNoNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list; skipped under -short")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "net" || strings.HasPrefix(p, "net/") || p == "crypto/tls" ||
			strings.HasPrefix(p, "github.com/miekg/dns") || strings.HasPrefix(p, "github.com/emersion/") {
			t.Errorf("qmail-local depends on %s", p)
		}
	}
}
