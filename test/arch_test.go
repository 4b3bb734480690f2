package test

import (
	"encoding/json"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

const module = "github.com/hqmail/hqmail"

type goPkg struct {
	ImportPath string
	Name       string
	Deps       []string
	Error      *struct{ Err string }
}

// listCmds returns every program under ./cmd with its transitive imports.
func listCmds(t *testing.T) map[string][]string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-e", "-json", "./cmd/...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	progs := map[string][]string{}
	for {
		var p goPkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Name != "main" {
			continue
		}
		if p.Error != nil {
			t.Logf("warning: %s: %s", p.ImportPath, p.Error.Err)
		}
		progs[strings.TrimPrefix(p.ImportPath, module+"/cmd/")] = p.Deps
	}
	return progs
}

func has(deps []string, pkg string) bool {
	for _, d := range deps {
		if d == pkg {
			return true
		}
	}
	return false
}

// TestArchitecture keeps the privilege boundaries of DESIGN.md §2 visible
// in the import graph.
func TestArchitecture(t *testing.T) {
	progs := listCmds(t)
	for _, need := range []string{"qmail-start", "qmail-lspawn", "qmail-queue", "qmail-local"} {
		if _, ok := progs[need]; !ok {
			t.Errorf("program %s not found under ./cmd", need)
		}
	}

	// Only the programs that start children under other ids may import
	// pkg/privsep. qmail-install is allowed (it creates the tree as root)
	// but does not need to.
	privsep := module + "/pkg/privsep"
	allowed := map[string]bool{"qmail-start": true, "qmail-lspawn": true, "qmail-install": true}
	var users []string
	for name, deps := range progs {
		if has(deps, privsep) {
			users = append(users, name)
			if !allowed[name] {
				t.Errorf("%s imports pkg/privsep; only qmail-start and qmail-lspawn may", name)
			}
		}
	}
	sort.Strings(users)
	t.Logf("pkg/privsep importers: %v", users)
	for _, must := range []string{"qmail-start", "qmail-lspawn"} {
		if !has(progs[must], privsep) {
			t.Errorf("%s does not import pkg/privsep (it must switch ids only through it)", must)
		}
	}

	forbidden := map[string][]string{
		// setuid qmailq, run by anyone: no network code at all.
		"qmail-queue": {"net", "crypto/tls", "github.com/miekg/dns", "github.com/emersion/go-smtp"},
		// runs as the recipient: delivers to files and programs only.
		"qmail-local": {"net"},
		// root: must not carry network code either.
		"qmail-lspawn": {"net", "crypto/tls", "github.com/miekg/dns", "github.com/emersion/go-smtp"},
		"qmail-start":  {"net", "crypto/tls", "github.com/miekg/dns", "github.com/emersion/go-smtp"},
	}
	for prog, bad := range forbidden {
		deps, ok := progs[prog]
		if !ok {
			continue
		}
		for _, b := range bad {
			for _, d := range deps {
				if d == b || strings.HasPrefix(d, b+"/") && b != "net" {
					t.Errorf("%s imports %s", prog, d)
				}
			}
		}
	}
}
