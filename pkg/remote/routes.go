package remote

import (
	"strings"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/dnsmx"
	"github.com/hqmail/hqmail/pkg/idna"
)

// Route is a control/smtproutes entry: deliver to Relay on Port instead of
// the host's MX. An empty Relay means "use MX" (no route).
type Route struct {
	Relay string
	Port  int
}

// TLS policies of control/tlsroutes.
const (
	TLSTry     = "try"     // STARTTLS when offered, certificate not checked (default)
	TLSNone    = "none"    // never STARTTLS
	TLSEncrypt = "encrypt" // TLS required, certificate not checked
	TLSRequire = "require" // TLS required, certificate verified against the host name
	// TLSLogin is no word of the file: it is the default of a delivery
	// whose relay has a login in control/smtpauth. The password goes only
	// over TLS whose certificate verified, as under TLSRequire; the
	// reports of a refusal speak of the password, not of tlsroutes.
	TLSLogin = "login"
)

// Table maps domain keys to values with qmail's smtproutes lookup: the exact
// host, then each ".suffix" longest first, then the empty key. Keys and
// hosts are compared in one form, idna.Fold's (A-labels, lowercased), the
// form DNS looks the host up by: a key written "bücher.example" or
// "xn--bcher-kva.example" (or ".bücher.example" for the subdomains)
// matches mail to either spelling, since both reach the same servers. An
// address literal, key or host, is compared by the address qmail-remote
// connects to (canonLiteral). Of duplicate keys (in that form) the last
// line wins.
type Table map[string]string

// cutKey splits a "key:rest" line of smtproutes, tlsroutes or smtpauth.
// A key starting with '[' and whose first ']' is followed by ':' is an
// address literal, whose colons ("[IPv6:2001:db8::1]") do not end it: it
// ends at that ']'. Any other key ends at the first ':', as in qmail.
func cutKey(l string) (key, rest string, ok bool) {
	if strings.HasPrefix(l, "[") {
		if i := strings.IndexByte(l, ']'); i >= 0 && strings.HasPrefix(l[i+1:], ":") {
			return l[:i+1], l[i+2:], true
		}
	}
	return strings.Cut(l, ":")
}

// canonLiteral returns the one form of an address literal: "[addr]", the
// address dnsmx.Literal reads it as (what qmail-remote connects to for a
// literal host), written as net.IP writes it. "[IPv6:FD42:6:1:0::2]",
// "[fd42:6:1::2]" and "[IPv6:fd42:6:1::2]" are all "[fd42:6:1::2]";
// "198.18.6.2", "[198.18.6.2]" and "[IPv6:::ffff:198.18.6.2]" are all
// "[198.18.6.2]". tlsroutes is a security policy: another spelling of
// the same address must not escape its line. s is anything else (a name,
// a dotted quad with leading zeros, which dnsmx looks up as a name): ok
// is false.
func canonLiteral(s string) (string, bool) {
	if ip := dnsmx.Literal(s); ip != nil {
		return "[" + ip.String() + "]", true
	}
	return "", false
}

// ParseTable parses "key:value" list lines (the key ends as cutKey says,
// at the first ':' unless it is a bracketed literal; a line without ':' is
// ignored), as control.KeyMap but with the keys in idna.Fold form (a key
// that is not UTF-8 keeps its bytes: lowercasing it as a string would
// turn every invalid byte into U+FFFD, two keys into one) and address
// literals in canonLiteral's.
func ParseTable(lines []string) Table {
	t := Table{}
	for _, l := range lines {
		k, v, ok := cutKey(l)
		if !ok {
			continue
		}
		k = idna.Fold(k)
		if len(k) > 1 {
			// A key written fully qualified ("example.com.") is
			// the host it names; it matched nothing, and a
			// tlsroutes line so written enforced nothing.
			k = strings.TrimSuffix(k, ".")
		}
		if c, ok := canonLiteral(k); ok {
			k = c
		}
		t[k] = v
	}
	return t
}

// Lookup returns the value of the first key matching host (in idna.Fold
// form, as the keys). A trailing dot of the host (a fully qualified
// "example.com.") is not part of the match: tlsroutes is a security
// policy, and "example.com." must not escape the line for example.com, nor
// "bücher.example" the line for "xn--bcher-kva.example", nor
// "[IPv6:FD42::2]" the line for "[fd42::2]". A literal host is looked up
// by its address first, then as any other host (a ".suffix" key may match
// a dotted quad, as in qmail).
func (t Table) Lookup(host string) (string, bool) {
	_, v, ok := t.find(host)
	return v, ok
}

// find is Lookup that also returns the key that matched (in the table's
// form: idna.Fold's, an address literal canonLiteral's; "" for the
// default line).
func (t Table) find(host string) (key, value string, ok bool) {
	if len(t) == 0 {
		return "", "", false
	}
	h := strings.TrimSuffix(idna.Fold(host), ".")
	if c, ok := canonLiteral(h); ok {
		if v, ok := t[c]; ok {
			return c, v, true
		}
	}
	if v, ok := t[h]; ok {
		return h, v, true
	}
	for i := 0; i < len(h); i++ {
		if h[i] == '.' {
			if v, ok := t[h[i:]]; ok {
				return h[i:], v, true
			}
		}
	}
	v, ok := t[""]
	return "", v, ok
}

// ParseRoute parses the value of an smtproutes line: "relay[:port]". The
// relay may be a bracketed literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"),
// whose colons do not end it. The port is read as qmail reads numbers,
// its leading digits ("2525\r" and "2525x" are 2525); a missing, zero,
// out-of-range or digitless port is 25.
func ParseRoute(v string) Route {
	// A file edited on Windows: the CR would end up in the relay's name.
	v = strings.TrimRight(v, " \t\r")
	relay, rest := v, ""
	if strings.HasPrefix(v, "[") {
		if i := strings.IndexByte(v, ']'); i >= 0 {
			relay, rest = v[:i+1], v[i+1:]
			rest = strings.TrimPrefix(rest, ":")
		}
	} else if i := strings.IndexByte(v, ':'); i >= 0 {
		relay, rest = v[:i], v[i+1:]
	}
	port := 25
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	if n, digits := control.ScanUlong(rest); digits > 0 && n > 0 && n < 65536 {
		port = int(n)
	}
	return Route{Relay: relay, Port: port}
}

// LookupRoute finds host's route in control/smtproutes lines.
func (t Table) LookupRoute(host string) (Route, bool) {
	v, ok := t.Lookup(host)
	if !ok {
		return Route{}, false
	}
	r := ParseRoute(v)
	if r.Relay == "" {
		return Route{}, false
	}
	return r, true
}

// TLSPolicy is the one place that decides the TLS policy of a delivery to
// host: the policy of host's control/tlsroutes line, else the default.
// Unknown words count as TLSRequire, the safe reading of a typo in a file
// meant to demand security. The default (no line, or a line with an empty
// policy) is TLSTry, except for a delivery that will log in (login: its
// relay has a line in control/smtpauth): TLSLogin, since a password sent
// over TLS whose certificate nobody checked goes to whoever can answer
// STARTTLS in the relay's place. An explicit line keeps its meaning, for
// a login too: "try" and "encrypt" send the password over unverified TLS,
// "none" never sends it.
func (t Table) TLSPolicy(host string, login bool) string {
	v, _ := t.Lookup(host)
	switch p := strings.ToLower(strings.TrimSpace(v)); p {
	case TLSTry, TLSNone, TLSEncrypt, TLSRequire:
		return p
	case "":
		if login {
			return TLSLogin
		}
		return TLSTry
	}
	return TLSRequire
}

// verifies reports whether policy checks the peer's certificate.
func verifies(policy string) bool { return policy == TLSRequire || policy == TLSLogin }

// requiresTLS reports whether policy refuses to go on without TLS.
func requiresTLS(policy string) bool { return policy != TLSTry && policy != TLSNone }

// Credentials are a smarthost login from control/smtpauth.
type Credentials struct{ User, Password string }

// ParseAuth parses control/smtpauth lines "relay:user:password" (the
// password is the rest of the line and may contain ':'). The relay is the
// relay of control/smtproutes (a bracketed literal may contain colons); it
// is keyed in authKey form (case does not matter, nor a trailing dot, nor
// whether an IDN is written in U-labels or A-labels, nor how an address
// literal is spelled); the last line for a relay wins. Look a relay up with AuthFor.
func ParseAuth(lines []string) map[string]Credentials {
	m := map[string]Credentials{}
	for _, l := range lines {
		relay, rest, ok := cutKey(l)
		if !ok {
			continue
		}
		user, pass, ok := strings.Cut(rest, ":")
		if !ok || user == "" {
			continue
		}
		m[authKey(relay)] = Credentials{User: user, Password: pass}
	}
	return m
}

// authKey is the form a relay is compared in: idna.Fold's without a
// trailing dot, as the keys of smtproutes and tlsroutes (the relay
// "smarthost.test." of smtproutes is the host "SMARTHOST.test" of
// smtpauth, and the other way round: the login went missing, and the mail
// bounced when the relay wanted one), an address literal canonLiteral's
// ("[IPv6:2001:DB8::1]" in smtproutes finds the login of "[2001:db8::1]":
// the same server).
func authKey(relay string) string {
	k := idna.Fold(relay)
	if len(k) > 1 {
		k = strings.TrimSuffix(k, ".")
	}
	if c, ok := canonLiteral(k); ok {
		return c
	}
	return k
}

// RelayKey is the form in which relays are the same relay: authKey's. A
// connection kept for "smarthost.test." serves "SMARTHOST.test" too.
func RelayKey(relay string) string { return authKey(relay) }

// AuthFor returns the login of control/smtpauth lines for relay, the relay
// of an smtproutes line as written there, in whichever spelling.
func AuthFor(lines []string, relay string) (Credentials, bool) {
	c, ok := ParseAuth(lines)[authKey(relay)]
	return c, ok
}
