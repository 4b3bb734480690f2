package unixid

import (
	"fmt"
	"os/user"
)

// Who names uid for a message: "qmailq (uid 992)" when the user database
// has it, else "uid 992".
func Who(uid int) string {
	if u, err := user.LookupId(Format(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
