package control

import "testing"

// TestCRLFAdvice: the sed command, with the path as one shell word:
// quoted only where a shell would split or expand it.
func TestCRLFAdvice(t *testing.T) {
	const sed = "convert it with sed -i 's/\\r$//' "
	for in, want := range map[string]string{
		"/var/qmail/control/me":       "/var/qmail/control/me",
		"/var/qmail/alias/.qmail-a+b": "/var/qmail/alias/.qmail-a+b",
		"/srv/my mail/control/me":     "'/srv/my mail/control/me'",
		"/srv/it's/control/me":        `'/srv/it'\''s/control/me'`,
		"/srv/$HOME/control/me":       "'/srv/$HOME/control/me'",
		"/srv/*/control/me":           "'/srv/*/control/me'",
		"":                            "''",
	} {
		if got := CRLFAdvice(in); got != sed+want {
			t.Errorf("CRLFAdvice(%q) = %s, want %s", in, got, sed+want)
		}
	}
}
