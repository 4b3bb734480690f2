package local

import "strings"

// environ is a process environment changed the way qmail changes its
// own: setting a variable removes every earlier copy (the last entry takes
// the freed slot) and appends the new one. Programs started from a .qmail
// file therefore see the inherited variables first and qmail-local's own
// in the order it sets them, as under qmail.
type environ []string

func (e *environ) put(key, value string) {
	prefix := key + "="
	s := *e
	for i := len(s) - 1; i >= 0; i-- {
		if strings.HasPrefix(s[i], prefix) {
			s[i] = s[len(s)-1]
			s = s[:len(s)-1]
		}
	}
	*e = append(s, prefix+value)
}

// get returns the value of key; with several copies inherited, the last
// one counts, as for exec.
func (e environ) get(key string) (string, bool) {
	prefix := key + "="
	for i := len(e) - 1; i >= 0; i-- {
		if strings.HasPrefix(e[i], prefix) {
			return e[i][len(prefix):], true
		}
	}
	return "", false
}
