package main

import (
	"context"
	"fmt"
	"github.com/hqmail/hqmail/bench/procstat"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const postfixBin = "/usr/sbin/postfix"

// pf is a private Postfix instance: its own config_directory (etc) and
// queue_directory (spool) under the benchmark's temporary directory.
type pf struct {
	dir, etc, spool, mail string
	smtp                  string
	sink                  *sink
}

// startPostfix configures and starts the instance; it returns nil and the
// reason when Postfix cannot be measured here.
func startPostfix(dir string) (*pf, string) {
	if _, err := os.Stat(postfixBin); err != nil {
		return nil, "no " + postfixBin + " (apt-get install postfix)"
	}
	if os.Geteuid() != 0 {
		return nil, "a private Postfix instance needs root (postfix -c DIR start)"
	}
	pfUID, _, err := lookupUser("postfix")
	if err != nil {
		return nil, "no postfix user: " + err.Error()
	}
	p := &pf{dir: dir, etc: filepath.Join(dir, "etc"), spool: filepath.Join(dir, "spool"), mail: filepath.Join(dir, "mail")}
	data := filepath.Join(dir, "data")
	for _, d := range []string{p.etc, p.spool, data, p.mail} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			die("%v", err)
		}
	}
	os.Chown(data, pfUID, -1)
	os.Chmod(p.mail, 0o777)
	p.sink = startSink(dir)
	port := freePort()
	p.smtp = fmt.Sprintf("127.0.0.1:%d", port)

	// Debian's defaults except what a private loopback instance needs:
	// local mail for pf.test to one Maildir through the virtual agent,
	// everything else to the sink through relayhost.
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s
data_directory = %[2]s
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.bench
mydomain = pf.bench
mydestination =
append_dot_mydomain = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
relayhost = [%[5]s]:%[6]s
virtual_mailbox_domains = pf.test
virtual_mailbox_base = %[3]s
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_mailbox_limit = 0
message_size_limit = 0
maillog_file = %[4]s/maillog
maillog_file_prefixes = %[4]s
alias_maps =
alias_database =
local_recipient_maps =
biff = no
`, p.spool, data, p.mail, dir, "127.0.0.1", strings.TrimPrefix(p.sink.Addr, "127.0.0.1:"))
	masterCF := p.smtp + ` inet n - n - - smtpd
pickup fifo n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`
	os.WriteFile(filepath.Join(p.etc, "main.cf"), []byte(mainCF), 0o644)
	os.WriteFile(filepath.Join(p.etc, "master.cf"), []byte(masterCF), 0o644)
	if out, err := p.postfix("start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		die("postfix start: %v\n%s\n%s", err, out, log)
	}
	atExit(func() {
		if out, err := p.postfix("stop"); err != nil {
			fmt.Fprintf(os.Stderr, "compare: postfix stop: %v %s\n", err, out)
			p.postfix("abort")
		}
		// master exits a moment after stop returns; wait for it (bounded).
		waitUntil(20*time.Second, func() bool { return p.masterPid() == 0 })
	})
	if !waitListen(p.smtp, 20*time.Second) {
		die("postfix does not listen on %s", p.smtp)
	}
	return p, ""
}

func (p *pf) run(prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, append([]string{"-c", p.etc}, args...)...).CombinedOutput()
	return string(out), err
}

func (p *pf) postfix(args ...string) (string, error) { return p.run(postfixBin, args...) }

func (p *pf) Name() string { return "postfix" }

func (p *pf) Sendmail(rcpt string) ([]string, []string) {
	return []string{"/usr/sbin/sendmail", "-i", rcpt}, []string{"PATH=/usr/sbin:/usr/bin:/bin", "MAIL_CONFIG=" + p.etc}
}

func (p *pf) SMTPAddr() string   { return p.smtp }
func (p *pf) LocalRcpt() string  { return "box@pf.test" }
func (p *pf) RemoteRcpt() string { return "rcpt@remote.example" }
func (p *pf) Maildir() string    { return filepath.Join(p.mail, "box") }
func (p *pf) Sink() *sink        { return p.sink }

// setDefer sets defer_transports and reloads; it waits until a queue
// manager started after the reload runs, so that no request reaches one
// still holding the old setting.
func (p *pf) setDefer(v string) {
	if out, err := p.run("/usr/sbin/postconf", "-e", "defer_transports="+v); err != nil {
		die("postconf: %v %s", err, out)
	}
	old := p.qmgrPid()
	if out, err := p.postfix("reload"); err != nil {
		die("postfix reload: %v %s", err, out)
	}
	if !waitUntil(30*time.Second, func() bool { q := p.qmgrPid(); return q > 0 && q != old }) {
		die("postfix: no new qmgr within 30 s of reload")
	}
}

// Hold: defer_transports=smtp (remote) or virtual (the Maildir).
func (p *pf) Hold(remote bool) {
	if remote {
		p.setDefer("smtp")
	} else {
		p.setDefer("virtual")
	}
}

// Release: defer_transports= + postfix reload + postqueue -f.
func (p *pf) Release(bool) {
	p.setDefer("")
	if out, err := p.run("/usr/sbin/postqueue", "-f"); err != nil {
		die("postqueue -f: %v %s", err, out)
	}
}

// Queued: nothing in maildrop, incoming or active; the count of deferred.
func (p *pf) Queued() (bool, int) {
	busy := 0
	for _, d := range []string{"maildrop", "incoming", "active"} {
		busy += countFiles(filepath.Join(p.spool, d))
	}
	return busy == 0, countFiles(filepath.Join(p.spool, "deferred"))
}

func (p *pf) masterPid() int {
	b, err := os.ReadFile(filepath.Join(p.spool, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0
	}
	return pid
}

// qmgrPid finds the qmgr child of this instance's master (by parent pid
// and command name in /proc; it signals nothing).
func (p *pf) qmgrPid() int {
	master := p.masterPid()
	if master == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if l < 0 || r < l {
			continue
		}
		f := strings.Fields(s[r+1:])
		if s[l+1:r] == "qmgr" && len(f) > 1 && f[1] == strconv.Itoa(master) {
			return pid
		}
	}
	return 0
}

func (p *pf) DaemonRSS() int { return procstat.VmHWM(p.qmgrPid()) }
