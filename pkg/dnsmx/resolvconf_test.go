package dnsmx_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/dnsmx"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// TestConfigFIFORefused: a FIFO named as the resolver file is refused at
// once (QA: control/resolvconf naming one blocked qmail-remote for good,
// with nobody writing to it), by both readers.
func TestConfigFIFORefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "resolv.conf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, read := range map[string]func(string) (*dnsmx.Config, error){
		"ReadConfig": dnsmx.ReadConfig, "ReadConfigStrict": dnsmx.ReadConfigStrict,
	} {
		done := make(chan error, 1)
		go func() { _, err := read(fifo); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, qhome.ErrNotRegular) {
				t.Errorf("%s of a FIFO: %v, want %v", name, err, qhome.ErrNotRegular)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s of a FIFO still blocked after 10 s", name)
		}
	}
}
