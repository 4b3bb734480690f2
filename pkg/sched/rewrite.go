package sched

import (
	"strings"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/idna"
)

// Channels.
const (
	chanLocal  = 0
	chanRemote = 1
)

var chanName = [2]string{"local", "remote"}

// rewrite classifies a recipient for the local or remote channel and
// returns the address to store (spec/scheduler.md §4).
func (cf *config) rewrite(r string) (int, string) {
	if strings.IndexByte(r, '@') < 0 {
		r = r + "@" + cf.envnoathost
	}
	for {
		at := strings.LastIndexByte(r, '@')
		if !cf.percenthack[idna.Fold(r[at+1:])] { // either spelling, as locals
			break
		}
		pct := strings.LastIndexByte(r[:at], '%')
		if pct < 0 {
			break
		}
		r = r[:pct] + "@" + r[pct+1:at]
	}
	at := strings.LastIndexByte(r, '@')
	// Either spelling of an IDN is the domain control/locals and
	// virtualdomains list (their keys are in this form: VirtualDomains).
	dom := idna.Fold(r[at+1:])
	if cf.locals[dom] {
		return chanLocal, r
	}
	prep, ok := vdomLookup(cf.vdoms, idna.FoldKey(r), dom, true)
	if !ok || prep == "" {
		return chanRemote, r
	}
	return chanLocal, prep + "-" + r
}

// vdomLookup finds the entry of vdoms (VirtualDomains) for an address: the whole
// address (if whole), the domain, each ".suffix" longest first, then the
// empty key.
func vdomLookup(vdoms map[string]string, addr, dom string, whole bool) (string, bool) {
	if whole {
		if v, ok := vdoms[addr]; ok {
			return v, true
		}
	}
	if v, ok := vdoms[dom]; ok {
		return v, true
	}
	for i := 0; i < len(dom); i++ {
		if dom[i] == '.' {
			if v, ok := vdoms[dom[i:]]; ok {
				return v, true
			}
		}
	}
	v, ok := vdoms[""]
	return v, ok
}

// unvirtual undoes the virtual-domain prepend of a recipient for a bounce
// paragraph (spec/scheduler.md §8) and replaces newlines with '_'.
func (cf *config) unvirtual(r string) string {
	return Unvirtual(cf.vdoms, r)
}

// Unvirtual undoes the virtual-domain prepend of recipient r for a bounce
// paragraph, with vdoms as VirtualDomains makes it: the entry of the
// domain, else of its .suffixes longest first, else the empty key (never
// the whole-address key); a non-empty prepend followed by '-' at the
// start is cut off. Newlines become '_'.
func Unvirtual(vdoms map[string]string, r string) string {
	at := strings.LastIndexByte(r, '@')
	if prep, ok := vdomLookup(vdoms, "", idna.Fold(r[at+1:]), false); ok && prep != "" {
		if strings.HasPrefix(r, prep+"-") {
			r = r[len(prep)+1:]
		}
	}
	return strings.ReplaceAll(r, "\n", "_")
}

// VirtualDomains is control/virtualdomains' lines as the table qmail-send
// looks recipients up in: keys in idna.FoldKey form.
func VirtualDomains(lines []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range control.ParseKeyValues(lines) {
		m[idna.FoldKey(kv.Key)] = kv.Value
	}
	return m
}

// verp returns the sender to use for one recipient (spec/scheduler.md §4).
func verp(sender, recip string) string {
	if !strings.HasSuffix(sender, "-@[]") {
		return sender
	}
	s := sender[:len(sender)-4]
	sat := strings.LastIndexByte(s, '@')
	rat := strings.LastIndexByte(recip, '@')
	if sat < 0 || rat < 0 {
		return sender
	}
	return s[:sat] + recip[:rat] + "=" + recip[rat+1:] + s[sat:]
}
