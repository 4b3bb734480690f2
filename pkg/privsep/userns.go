package privsep

import "github.com/hqmail/hqmail/pkg/unixid"

// Unmapped explains why children cannot be started under c in this user
// namespace (unixid.Unmapped), or returns "".
func Unmapped(c *Cred) string {
	if c == nil {
		return ""
	}
	return unixid.Unmapped(c.UID, c.GID, c.Groups, true)
}
