package test

import (
	"os"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// TestMain removes the programs the tests built (harness.Build and
// qmail-remote's own build) when they are done, so that a run leaves
// nothing behind in the temporary directory.
func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, func() {
		if remoteOwnDir {
			os.RemoveAll(remoteBinDir)
		}
	}))
}
