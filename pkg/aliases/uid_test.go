package aliases

import (
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/unixid"
)

// TestUserNameBigID: an owner's uid past 2^31-1 is named as the kernel's
// unsigned number, also where int has 32 bits (make cross runs this as 386).
func TestUserNameBigID(t *testing.T) {
	uid, _ := unixid.Parse("3000000000")
	if got := userName(uid); !strings.HasPrefix(got, "uid 3000000000") {
		t.Errorf("userName = %q", got)
	}
}
